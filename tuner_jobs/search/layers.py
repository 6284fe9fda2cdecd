"""Median imputation of missing numbers, built from Keras's own operations.

`impute_missing` is what the preprocessor uses: `keras.ops.isnan` and `keras.ops.where`
applied to a functional model's tensors. Keras 3 records them in the model as built-in
operations (`keras.src.ops.numpy>Isnan`, `>Where`, the medians as a constant argument),
so `keras.saving.load_model(path, safe_mode=True)` loads the saved model with plain
Keras: no custom object, no Lambda (which safe mode refuses), nothing of this service.

`ImputeMissing` is the custom layer models saved before that change use; it stays
registered so that those files still load here (the prediction child imports this module).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops


@dataclass(frozen=True)
class NumericStatistics:
    """Per numeric column, from the training rows: the median that fills a missing value,
    and the mean and variance of the filled column that Normalization uses."""

    medians: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


def numeric_statistics(values: np.ndarray) -> NumericStatistics:
    """`values`: the training rows of the numeric columns (NaN where missing)."""
    with warnings.catch_warnings():  # a column with no value in the training split
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nan_to_num(np.nanmedian(values, axis=0), nan=0.0)
    filled = np.where(np.isnan(values), medians, values)
    return NumericStatistics(
        medians=medians,
        mean=filled.mean(axis=0),
        variance=np.maximum(filled.var(axis=0), 1e-12),
    )


def impute_missing(x: keras.KerasTensor, fill_values: Any) -> keras.KerasTensor:
    """NaN in each column of `x` replaced by that column's value in `fill_values`."""
    fill = np.asarray(fill_values, dtype="float32")
    return ops.where(ops.isnan(x), fill, x)


@keras.saving.register_keras_serializable(package="tuner_service")
class ImputeMissing(keras.layers.Layer):
    """Models saved before `impute_missing`: replace NaN with each column's median."""

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
