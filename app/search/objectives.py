"""A job's objectives: one `{name, direction}`, or a list of them for a multi-objective search.

A list is searched by Optuna's samplers (tuner.algorithm `tpe` or `nsga2`, see
tuner_jobs.search.optuna_oracle), which keep each objective apart and find a Pareto
front; KerasTuner's own oracles would add them into one number. An objective is a metric
training records, or one the search measures per trial after training (MEASURED).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from app.errors import ProblemError

# Measured per trial after training (tuner_jobs.search.optuna_oracle), each better when lower:
# the network's trainable parameters, and the median time to predict a batch of 256 rows.
MEASURED: dict[str, str] = {"model_params": "min", "predict_latency_ms": "min"}
# The algorithms that keep several objectives apart.
MULTI_OBJECTIVE_ALGORITHMS = ("tpe", "nsga2")
MAX_OBJECTIVES = 4


def one_or_list(model: type[BaseModel]) -> Callable[[Any, Any], Any]:
    """A wrap validator for a field that takes one `model` or a list of them: each form is
    validated on its own, so an error names objective.<index>.<field>, not a union member."""
    as_list = TypeAdapter(
        Annotated[list[model], Field(min_length=1, max_length=MAX_OBJECTIVES)]  # type: ignore[valid-type]
    )

    def validate(value: Any, handler: Any) -> Any:
        if isinstance(value, list):
            return as_list.validate_python(value)
        if isinstance(value, dict):
            return model.model_validate(value)
        return handler(value)

    return validate


def _problem(loc: list[str | int], msg: str) -> ProblemError:
    where = ".".join(str(part) for part in loc)
    return ProblemError(
        422,
        f"{where}: {msg}",
        title="Invalid input",
        errors=[{"loc": ["body", *loc], "msg": msg, "type": "value"}],
    )


def resolve_objectives(
    objectives: Sequence[Any],
    *,
    listed: bool,
    algorithm: str,
    task: str,
    known: list[str],
    default_name: str,
    default_direction: Callable[[str], str],
    check_direction: Callable[..., None],
) -> None:
    """Fill each objective's name and direction in place; 422 naming the field for a list with
    an algorithm that cannot search it, an unknown or repeated metric, or a measured metric
    first (KerasTuner's score, early stopping and the best-epoch checkpoint follow the first
    objective, which must therefore be a metric of every epoch)."""
    if listed and len(objectives) > 1 and algorithm not in MULTI_OBJECTIVE_ALGORITHMS:
        raise _problem(
            ["objective"],
            f"a list of objectives needs tuner.algorithm {' or '.join(MULTI_OBJECTIVE_ALGORITHMS)}"
            f" (got {algorithm!r}, which would add them into one number)",
        )
    seen: set[str] = set()
    for index, objective in enumerate(objectives):
        loc: list[str | int] = ["objective", index] if listed else ["objective"]
        if objective.name is None:
            if listed and index > 0:
                raise _problem([*loc, "name"], "each objective after the first needs a name")
            objective.name = default_name
        name = objective.name
        if name in MEASURED:
            if index == 0:
                raise _problem(
                    [*loc, "name"],
                    f"{name!r} is measured once per trial, after training: it can be a second "
                    f"or later objective; the first must be one of {', '.join(known)}",
                )
            if algorithm not in MULTI_OBJECTIVE_ALGORITHMS:
                raise _problem([*loc, "name"], f"{name!r} is measured by tpe and nsga2 only")
        elif name not in known:
            everything = [*known, *MEASURED]
            raise _problem(
                [*loc, "name"],
                f"unknown metric {name!r} for {task}; known: {', '.join(everything)}",
            )
        if name in seen:
            raise _problem([*loc, "name"], f"objective {name!r} is listed twice")
        seen.add(name)
        if objective.direction is None:
            objective.direction = MEASURED.get(name) or default_direction(name)
        check_direction(name, objective.direction, override=objective.direction_override, loc=loc)
