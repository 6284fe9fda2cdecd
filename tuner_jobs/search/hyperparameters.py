"""Effective search space (JSON) -> KerasTuner HyperParameters, as a user would write by hand."""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from app.search.search_space import declaration_order, parameter_values


def units_name(layer: int) -> str:
    return f"units_{layer}"


def _declare(hp: kt.HyperParameters, name: str, param: dict[str, Any]) -> None:
    kind = param["type"]
    default = param.get("default")
    if kind == "int":
        hp.Int(
            name,
            param["min"],
            param["max"],
            step=param.get("step"),
            sampling=param.get("sampling", "linear"),
            default=default,
        )
    elif kind == "float":
        hp.Float(
            name,
            param["min"],
            param["max"],
            step=param.get("step"),
            sampling=param.get("sampling", "linear"),
            default=default,
        )
    elif kind == "pow2":
        # Powers of two: KerasTuner's log sampling treats step as a multiplier.
        hp.Int(name, param["min"], param["max"], step=2, sampling="log", default=default)
    elif kind == "choice":
        hp.Choice(name, param["values"], default=default)
    elif kind == "boolean":
        hp.Boolean(name, default=param.get("default", False))
    elif kind == "fixed":
        hp.Fixed(name, param["value"])
    else:  # the API validated the space; anything else is a bug
        raise ValueError(f"unknown parameter type {kind!r}")


def build_hyperparameters(space: dict[str, dict[str, Any]]) -> kt.HyperParameters:
    """Declare every hyperparameter up front.

    `units` becomes one `units_<i>` per layer; layer i's units are only active
    when num_layers > i (a KerasTuner conditional scope), so a search never
    spends trials varying the width of a layer the model does not have.
    """
    hp = kt.HyperParameters()
    layer_options = sorted(int(v) for v in parameter_values(space["num_layers"]) or [])
    _declare(hp, "num_layers", space["num_layers"])
    for layer in range(max(layer_options)):
        needs = [n for n in layer_options if n > layer]
        if len(needs) == len(layer_options):
            _declare(hp, units_name(layer), space["units"])
        else:
            with hp.conditional_scope("num_layers", needs):
                _declare(hp, units_name(layer), space["units"])
    for name in declaration_order(space):
        _declare(hp, name, space[name])
    return hp


def active_values(hp: kt.HyperParameters) -> dict[str, Any]:
    """The trial's hyperparameters without KerasTuner's bookkeeping (tuner/epochs, ...)."""
    declared = {param.name: param for param in hp.space}
    values = {}
    for name, value in hp.values.items():
        if name not in declared or not hp.is_active(declared[name]):
            continue
        values[name] = value.item() if hasattr(value, "item") else value
    return values
