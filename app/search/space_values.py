"""The values a parameter of the search space takes, and what a grid search visits."""

from __future__ import annotations

import math
from typing import Any


def parameter_values(param: dict[str, Any]) -> list[Any] | None:
    """The finite list of values a parameter takes, or None for a continuous range."""
    kind = param["type"]
    if kind == "fixed":
        return [param["value"]]
    if kind == "choice":
        return list(param["values"])
    if kind == "boolean":
        return [False, True]
    if kind == "pow2":
        return [1 << e for e in range(param["min"].bit_length() - 1, param["max"].bit_length())]
    step = param.get("step")
    if kind == "int":
        if param.get("sampling") == "log" and step:
            values, v = [], param["min"]
            while v <= param["max"]:
                values.append(v)
                v *= step
            return values
        return list(range(param["min"], param["max"] + 1, step or 1))
    if kind == "float" and step and param.get("sampling") != "log":
        count = int(math.floor((param["max"] - param["min"]) / step + 1e-9)) + 1
        return [param["min"] + i * step for i in range(count)]
    return None


# KerasTuner's grid walks a continuous range at ten evenly spaced points.
GRID_POINTS_PER_CONTINUOUS_RANGE = 10


def layer_counts(space: dict[str, dict[str, Any]]) -> list[int]:
    return sorted(int(v) for v in parameter_values(space["num_layers"]) or [])


def grid_values(param: dict[str, Any]) -> list[Any]:
    """The values KerasTuner's GridSearch visits for one parameter: its default, then `hp.values`.

    KerasTuner's arithmetic is copied on purpose: a float step counts `(max - min) // step + 1`
    values (so [0, 0.5] by 0.1 stops at 0.4), and a log-sampled int without a step, like any
    continuous range, is walked at ten points.
    """
    kind, step, log = param["type"], param.get("step"), param.get("sampling") == "log"
    if kind in ("int", "float") and step is None and (kind == "float" or log):
        lo, hi = param["min"], param["max"] + (1 if kind == "int" else 0)
        probs = [i * 0.1 + 0.05 for i in range(GRID_POINTS_PER_CONTINUOUS_RANGE)]
        points = [lo * math.pow(hi / lo, p) if log else p * (hi - lo) + lo for p in probs]
        values = list(dict.fromkeys(int(v) if kind == "int" else v for v in points))
    elif kind == "float" and step is not None:
        lo, hi = param["min"], param["max"]
        if log:
            count = int(math.log(hi / lo, step) + 1e-8) + 1
            values = [lo * math.pow(step, i) for i in range(count)]
        else:
            values = [lo + i * step for i in range(int((hi - lo) // step + 1))]
    else:
        values = parameter_values(param) or []
    default = param.get("default", param.get("min", values[0]))
    return [default, *(v for v in values if v != default)]


def grid_size(space: dict[str, dict[str, Any]]) -> int:
    """How many distinct models a grid search visits (per-layer units count per layer)."""
    counts = {name: len(grid_values(param)) for name, param in space.items()}
    total = 0
    for layers in {int(v) for v in grid_values(space["num_layers"])}:
        combos = 1
        for name, count in counts.items():
            if name != "num_layers":
                combos *= count ** (layers if name == "units" else 1)
        total += combos
    return total
