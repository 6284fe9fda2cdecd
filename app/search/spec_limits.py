"""Caps on a submitted job spec, as pure functions: numbers that JSON can carry but nothing
downstream can store or train with, lists and searches too large to serve, networks too
large for memory, and objective directions that contradict their metric.

Each check raises app.errors.ProblemError 422 with an `errors` entry naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.errors import ProblemError

# Python's json (and so FastAPI) reads `Infinity`, `NaN` and `1e999` (as inf) as floats;
# stored as JSON they come back as null. A float beyond float32 overflows in TensorFlow.
FLOAT32_MAX = 3.4028234663852886e38
# The longest list a spec may hold (a `choice`'s values, warm-start job ids, ...).
MAX_LIST_ITEMS = 1_000
MAX_LISTED_ERRORS = 20

# Metrics whose better direction is fixed: asking for the other one is almost always a typo.
MINIMIZED_METRICS = frozenset({"loss", "mae", "mse"})
MAXIMIZED_METRICS = frozenset({"accuracy"})


# What a search process holds, per value, for its memory estimate at submission: float32
# everywhere; the encoded table three times (the matrix, its training and validation
# splits, the tensors Keras makes of them); each weight four times (itself, its gradient,
# Adam's two moments); each activation of a batch three times (its value, its gradient,
# the batch's copy of its inputs).
FLOAT_BYTES = 4
DATA_COPIES = 3
WEIGHT_COPIES = 4
ACTIVATION_COPIES = 3


@dataclass(frozen=True)
class SpecLimits:
    max_search_epochs: int = 1_000_000
    max_model_params: int = 20_000_000
    max_search_memory_mb: int = 3072
    # The dataset's rows, for the memory estimate (None: not estimated).
    rows: int | None = None

    @classmethod
    def from_settings(cls, settings: Any, *, rows: int | None = None) -> SpecLimits:
        return cls(
            max_search_epochs=settings.max_search_epochs,
            max_model_params=settings.max_model_params,
            max_search_memory_mb=settings.max_search_memory_mb,
            rows=rows,
        )


def _error(loc: list[str | int], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": "value"}


def _raise(errors: list[dict[str, Any]]) -> None:
    if errors:
        listed = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
            for e in errors[:MAX_LISTED_ERRORS]
        )
        raise ProblemError(422, listed, title="Invalid input", errors=errors)


def _number_problem(value: float) -> str | None:
    # Integers are bounded where they are declared (pydantic fields, app.search.search_space).
    if not math.isfinite(value):
        return f"got {value!r}: only finite numbers are allowed"
    if abs(value) > FLOAT32_MAX:
        return f"{value!r} is out of range (at most {FLOAT32_MAX:.4g} in magnitude)"
    return None


def number_and_list_errors(
    value: Any, loc: list[str | int], *, max_items: int = MAX_LIST_ITEMS
) -> list[dict[str, Any]]:
    """Every non-finite or out-of-range number and every over-long list under `value`."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack and len(errors) < MAX_LISTED_ERRORS:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, [*where, str(k)]) for k, v in item.items())
        elif isinstance(item, list | tuple):
            if len(item) > max_items:
                errors.append(_error(where, f"at most {max_items} items, got {len(item)}"))
                continue  # its items are not worth walking
            stack.extend((v, [*where, i]) for i, v in enumerate(item))
        elif isinstance(item, float) and (problem := _number_problem(item)) is not None:
            errors.append(_error(where, problem))
    return errors


def check_numbers_and_lists(spec: dict[str, Any]) -> None:
    """422 for a non-finite or out-of-range number, or an over-long list, anywhere in the spec
    (its python-mode dump: floats still floats, `Infinity` still inf)."""
    _raise(sorted(number_and_list_errors(spec, []), key=lambda e: [str(p) for p in e["loc"]]))


def check_direction(metric: str, direction: str, *, override: bool, loc: list[str | int]) -> None:
    """`val_loss` maximized or `accuracy` minimized is a 422 unless `direction_override`."""
    if override:
        return
    base = metric.removeprefix("val_")
    expected = "min" if base in MINIMIZED_METRICS else "max" if base in MAXIMIZED_METRICS else None
    if expected is not None and direction != expected:
        _raise(
            [
                _error(
                    [*loc, "direction"],
                    f"{metric!r} is better when {'lower' if expected == 'min' else 'higher'}: "
                    f"direction {direction!r} would search for the worst model; set "
                    '"direction_override": true in the objective if that is intended',
                )
            ]
        )


def check_search_size(
    *, trials: int, epochs: int, executions: int, limits: SpecLimits, loc: list[str | int]
) -> None:
    """Planned trials x epochs per trial x executions per trial against TUNER_MAX_SEARCH_EPOCHS."""
    size = trials * epochs * executions
    if size > limits.max_search_epochs:
        _raise(
            [
                _error(
                    loc,
                    f"the search plans {trials} trial(s) x {epochs} epoch(s) x {executions} "
                    f"execution(s) = {size} epochs, more than the limit of "
                    f"{limits.max_search_epochs} (TUNER_MAX_SEARCH_EPOCHS)",
                )
            ]
        )


def _largest(param: dict[str, Any]) -> int:
    kind = param["type"]
    if kind == "fixed":
        return int(param["value"])
    if kind == "choice":
        return int(max(param["values"]))
    return int(param["max"])


def dense_params(*, features: int, units: int, layers: int, outputs: int) -> int:
    """Weights and biases of a dense network: features -> layers x units -> outputs."""
    first = (features + 1) * units
    hidden = (layers - 1) * (units + 1) * units
    return first + hidden + (units + 1) * outputs


def check_model_size(
    space: dict[str, dict[str, Any]], *, features: int, outputs: int, limits: SpecLimits
) -> None:
    """The largest network the effective space allows (max units in each of max layers, on the
    dataset's encoded width) against TUNER_MAX_MODEL_PARAMS."""
    units, layers = _largest(space["units"]), _largest(space["num_layers"])
    params = dense_params(features=features, units=units, layers=layers, outputs=outputs)
    if params > limits.max_model_params:
        _raise(
            [
                _error(
                    ["search_space", "units"],
                    f"the largest network this space allows ({layers} layer(s) of {units} "
                    f"units on {features} input feature(s)) has {params:,} parameters, more "
                    f"than the limit of {limits.max_model_params:,} (TUNER_MAX_MODEL_PARAMS); "
                    "lower units.max or num_layers.max",
                )
            ]
        )


def search_memory(
    *, rows: int, features: int, params: int, batch: int, units: int, layers: int
) -> dict[str, int]:
    """A search process's memory, in bytes, by what it is spent on."""
    return {
        "data": rows * features * FLOAT_BYTES * DATA_COPIES,
        "model": params * FLOAT_BYTES * WEIGHT_COPIES,
        "batch": batch * (features + units * layers) * FLOAT_BYTES * ACTIVATION_COPIES,
    }


# Where to look when each part is the largest: the field the refusal names, and its hint.
MEMORY_PARTS = {
    "data": (["dataset_id"], "upload fewer rows, or fewer or narrower categorical columns"),
    "model": (["search_space", "units"], "lower units.max or num_layers.max"),
    "batch": (["search_space", "batch_size"], "lower the batch sizes"),
}


def check_search_memory(
    space: dict[str, dict[str, Any]], *, features: int, outputs: int, limits: SpecLimits
) -> None:
    """The largest search the space allows on the dataset (its rows x encoded width, the
    largest network, the largest batch) against TUNER_MAX_SEARCH_MEMORY_MB."""
    if limits.rows is None:
        return
    units, layers = _largest(space["units"]), _largest(space["num_layers"])
    batch = _largest(space["batch_size"]) if "batch_size" in space else 1
    params = dense_params(features=features, units=units, layers=layers, outputs=outputs)
    parts = search_memory(
        rows=limits.rows, features=features, params=params, batch=batch, units=units, layers=layers
    )
    total_mb = sum(parts.values()) >> 20
    if total_mb <= limits.max_search_memory_mb:
        return
    largest = max(parts, key=lambda part: parts[part])
    loc, hint = MEMORY_PARTS[largest]
    spent = ", ".join(f"{part} {size >> 20:,} MB" for part, size in parts.items())
    _raise(
        [
            _error(
                loc,
                f"a search on this dataset ({limits.rows:,} rows x {features:,} features, up "
                f"to {layers} layer(s) of {units} units, batches of up to {batch}) needs about "
                f"{total_mb:,} MB ({spent}), more than the limit of "
                f"{limits.max_search_memory_mb:,} MB (TUNER_MAX_SEARCH_MEMORY_MB); {hint}",
            )
        ]
    )


def fit_default_units(
    space: dict[str, dict[str, Any]], *, features: int, limits: SpecLimits
) -> bool:
    """Halve the seeded `units` range's top (never below its bottom) until the largest
    network fits TUNER_MAX_MODEL_PARAMS and the search TUNER_MAX_SEARCH_MEMORY_MB: a job
    that overrides nothing must never be refused for a space it did not choose (a wide
    table seeds wide layers). Returns whether the range was narrowed."""
    units = space["units"]
    narrowed = False
    while units["max"] > units["min"]:
        try:
            check_model_size(space, features=features, outputs=1, limits=limits)
            check_search_memory(space, features=features, outputs=1, limits=limits)
        except ProblemError:
            units["max"] //= 2
            if units.get("default") is not None and units["default"] > units["max"]:
                units["default"] = units["max"]
            narrowed = True
            continue
        break
    return narrowed


def check_size(
    spec: Any,
    space: dict[str, dict[str, Any]],
    *,
    trials: int,
    features: int,
    limits: SpecLimits,
) -> None:
    """The size caps for a resolved spec (app.search.spec.resolve_spec). The output layer is
    counted as one unit: the class count is not known here, and the hidden layers dominate."""
    tuner = spec.tuner
    hyperband = tuner.algorithm == "hyperband"
    check_search_size(
        trials=trials,
        epochs=tuner.max_epochs if hyperband else spec.training.epochs,
        executions=tuner.executions_per_trial,
        limits=limits,
        loc=["tuner", "max_epochs" if hyperband else "max_trials"],
    )
    check_model_size(space, features=features, outputs=1, limits=limits)
    check_search_memory(space, features=features, outputs=1, limits=limits)
