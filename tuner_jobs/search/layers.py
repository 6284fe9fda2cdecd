"""The one custom layer the saved best model needs: median imputation of missing numbers.

Keras has no built-in layer that replaces NaN. This one is registered as
`tuner_service>ImputeMissing`, so `keras.saving.load_model(path)` (safe mode)
loads the model once this module has been imported.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tuner_service")
class ImputeMissing(keras.layers.Layer):
    """Replace NaN in each column with that column's training median."""

    def __init__(self, fill_values: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fill_values = [float(v) for v in fill_values]

    def call(self, inputs: Any) -> Any:
        fill = ops.convert_to_tensor(self.fill_values, dtype=inputs.dtype)
        return ops.where(ops.isnan(inputs), fill, inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fill_values": self.fill_values}
