"""The search space as KerasTuner's own `HyperParameters.get_config()` JSON, in pure Python.

This is the one translation of the service's search-space language into KerasTuner: the
API exports it (GET /jobs/{id}/keras_tuner_config) without importing keras_tuner, and the
search process builds its `HyperParameters` from it (tuner_jobs.search.hyperparameters).
"""

from __future__ import annotations

from typing import Any

from app.search.search_space import declaration_order
from app.search.space_values import layer_counts


def units_name(layer: int) -> str:
    """The hyperparameter holding the width of hidden layer `layer` (0-based)."""
    return f"units_{layer}"


def _condition(parent: str, values: list[int]) -> dict[str, Any]:
    return {"class_name": "Parent", "config": {"name": parent, "values": values}}


def _hyperparameter(
    name: str, param: dict[str, Any], conditions: list[dict[str, Any]]
) -> tuple[dict[str, Any], Any]:
    """One entry of `space` and the value KerasTuner starts it at (its default).

    Each branch does to the arguments what the KerasTuner class does, so that types
    match too (an Int's bounds are ints, a Float's floats), and keeps its key order.
    """
    kind, default = param["type"], param.get("default")
    if kind in ("int", "pow2"):
        # pow2 is hp.Int(..., step=2, sampling="log"); a linear Int without a step steps by 1.
        sampling = "log" if kind == "pow2" else param.get("sampling", "linear")
        step = 2 if kind == "pow2" else param.get("step")
        step = int(step) if step is not None else (1 if sampling == "linear" else None)
        low, high = int(param["min"]), int(param["max"])
        config = {
            "name": name,
            "default": default,  # an Int's config keeps None; its value starts at min
            "conditions": conditions,
            "min_value": low,
            "max_value": high,
            "step": step,
            "sampling": sampling,
        }
        return {"class_name": "Int", "config": config}, low if default is None else default
    if kind == "float":
        low = float(param["min"])
        start = low if default is None else default
        config = {
            "name": name,
            "default": start,
            "conditions": conditions,
            "min_value": low,
            "max_value": float(param["max"]),
            "step": param.get("step"),
            "sampling": param.get("sampling", "linear"),
        }
        return {"class_name": "Float", "config": config}, start
    if kind == "choice":
        values = list(param["values"])
        # KerasTuner keeps strings, turns ints *and booleans* into ints, leaves floats as is.
        kind_of = str if isinstance(values[0], str) else int if isinstance(values[0], int) else None
        if kind_of is not None:
            values = [kind_of(v) for v in values]
            default = None if default is None else kind_of(default)
        start = values[0] if default is None else default
        config = {
            "name": name,
            "default": start,
            "conditions": conditions,
            "values": values,
            "ordered": isinstance(values[0], int | float),
        }
        return {"class_name": "Choice", "config": config}, start
    if kind == "boolean":
        start = param.get("default", False)
        config = {"name": name, "default": start, "conditions": conditions}
        return {"class_name": "Boolean", "config": config}, start
    if kind == "fixed":
        config = {"name": name, "conditions": conditions, "value": param["value"]}
        return {"class_name": "Fixed", "config": config}, param["value"]
    raise ValueError(f"unknown parameter type {kind!r}")  # the API validated the space


def keras_tuner_config(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`HyperParameters.get_config()` of the search's hyperparameters: what the search
    process passes to `keras_tuner.HyperParameters.from_config`, and a user's script can too.

    Declared in a fixed order, since KerasTuner's seeded sampling follows it: num_layers,
    one units_<i> per layer, then the rest. Layer i's width is conditional on
    num_layers > i (a KerasTuner conditional scope), so a search never spends trials
    varying the width of a layer the model does not have. `values` holds each active
    default, as declaring them one by one would.
    """
    entries: list[dict[str, Any]] = []
    values: dict[str, Any] = {}

    def declare(name: str, param: dict[str, Any], needs: list[int] | None = None) -> None:
        conditions = [_condition("num_layers", needs)] if needs is not None else []
        entry, start = _hyperparameter(name, param, conditions)
        entries.append(entry)
        if needs is None or values.get("num_layers") in needs:
            values.setdefault(name, start)

    options = layer_counts(space)
    declare("num_layers", space["num_layers"])
    for layer in range(max(options)):
        needs = [n for n in options if n > layer]
        declare(units_name(layer), space["units"], None if len(needs) == len(options) else needs)
    for name in declaration_order(space):
        declare(name, space[name])
    return {"space": entries, "values": values}
