"""Effective search space (JSON) -> the KerasTuner HyperParameters a search runs with.

There is one translation of the service's search-space language into KerasTuner:
`app.search.keras_tuner_config`, the `HyperParameters.get_config()` JSON the API also
exports. The search builds its HyperParameters from that JSON, exactly as a user's
script would from the export, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from app.search.keras_tuner_config import keras_tuner_config, units_name

__all__ = ["active_values", "build_hyperparameters", "units_name"]


def build_hyperparameters(space: dict[str, dict[str, Any]]) -> kt.HyperParameters:
    """Every hyperparameter, declared up front (see `keras_tuner_config` for the layout:
    one `units_<i>` per layer, active only when the network has that layer)."""
    return kt.HyperParameters.from_config(keras_tuner_config(space))


def active_values(hp: kt.HyperParameters) -> dict[str, Any]:
    """The trial's hyperparameters without KerasTuner's bookkeeping (tuner/epochs, ...)."""
    declared = {param.name: param for param in hp.space}
    values = {}
    for name, value in hp.values.items():
        if name not in declared or not hp.is_active(declared[name]):
            continue
        values[name] = value.item() if hasattr(value, "item") else value
    return values
