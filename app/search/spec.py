"""The job spec a user submits, and how its defaults are filled in from the dataset."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.errors import ProblemError
from app.search.search_space import effective_search_space, grid_size, layer_counts

Algorithm = Literal["random_search", "hyperband", "bayesian", "grid"]
Direction = Literal["min", "max"]

# What each task's model is compiled with (see tuner_jobs.search.model_builder).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy",),
    "regression": ("mae",),
}
MAXIMIZED = {"accuracy"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TunerSpec(_Spec):
    algorithm: Algorithm = "hyperband"
    max_trials: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Trial budget. Defaults to 20, except Hyperband, which runs its full "
        "schedule (set by max_epochs and factor) unless a cap is given.",
    )
    max_epochs: int | None = Field(
        default=None, ge=1, le=10_000, description="Hyperband only; defaults to training.epochs"
    )
    factor: int = Field(default=3, ge=2, le=100, description="Hyperband reduction factor")
    hyperband_iterations: int = Field(default=1, ge=1, le=100)
    executions_per_trial: int = Field(default=1, ge=1, le=20)
    seed: int | None = Field(default=42, ge=0, le=2**31 - 1)


class ObjectiveSpec(_Spec):
    name: str | None = Field(default=None, description="val_accuracy / val_loss by task")
    direction: Direction | None = None


class TrainingSpec(_Spec):
    epochs: int = Field(default=30, ge=1, le=10_000)
    validation_split: float = Field(default=0.2, gt=0, lt=1)


class EarlyStoppingSpec(_Spec):
    monitor: str = "val_loss"
    patience: int = Field(default=5, ge=0, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)
    restore_best_weights: bool = True


class ReduceLROnPlateauSpec(_Spec):
    monitor: str = "val_loss"
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: int = Field(default=3, ge=0, le=10_000)
    min_lr: float = Field(default=0.0, ge=0)
    min_delta: float = Field(default=1e-4, ge=0)


class CallbacksSpec(_Spec):
    """`null` or `false` turns a callback off; an omitted one keeps its default."""

    early_stopping: EarlyStoppingSpec | None = Field(default_factory=EarlyStoppingSpec)
    reduce_lr_on_plateau: ReduceLROnPlateauSpec | None = None
    tensorboard: bool = False

    @field_validator("early_stopping", "reduce_lr_on_plateau", mode="before")
    @classmethod
    def _bool_switch(cls, value: Any, info: Any) -> Any:
        if value is False:
            return None
        if value is True:
            return {}
        return value


class JobCreate(_Spec):
    dataset_id: str = Field(min_length=1, max_length=64)
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    search_space: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the seeded default search space, by hyperparameter name",
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    callbacks: CallbacksSpec = Field(default_factory=CallbacksSpec)
    max_runtime_s: float | None = Field(
        default=None,
        gt=0,
        le=30 * 24 * 3600,
        description="Wall-clock budget from the job's first start; past it the search stops "
        "at the next epoch and the job fails with reason timeout (its trials stay readable).",
    )
    parallel_trials: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Trials run at once, by as many KerasTuner workers (on any worker "
        "machines) against one chief that serves the oracle. 1 runs the search in one "
        "process.",
    )


def metric_names(task: str) -> list[str]:
    names = ["loss", *TASK_METRICS[task]]
    return names + [f"val_{n}" for n in names]


def default_direction(metric: str) -> Direction:
    base = metric.removeprefix("val_")
    return "max" if base in MAXIMIZED else "min"


def _check_metric(metric: str, task: str, field: list[str]) -> None:
    known = metric_names(task)
    if metric not in known:
        raise ProblemError(
            422,
            f"{'.'.join(field)}: unknown metric {metric!r} for {task}; known: {', '.join(known)}",
            title="Invalid input",
            errors=[
                {"loc": ["body", *field], "msg": f"unknown metric {metric!r}", "type": "value"}
            ],
        )


def hyperband_schedule_size(max_epochs: int, factor: int, iterations: int) -> int:
    """Trials KerasTuner's Hyperband oracle creates (mirrors HyperbandOracle's bracket sizes)."""
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    per_iteration = sum(
        math.ceil(end_size / (b + 1) * factor ** (b - r))
        for b in range(brackets)
        for r in range(b + 1)
    )
    return per_iteration * iterations


def resolve_spec(
    spec: JobCreate, *, task: str, features: int
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Fill the spec's defaults for this dataset.

    Returns (spec with defaults filled, effective search space, trials planned).
    """
    space = effective_search_space(spec.search_space, features=features)
    resolved = spec.model_copy(deep=True)
    objective = resolved.objective
    if objective.name is None:
        objective.name = "val_accuracy" if task == "classification" else "val_loss"
    _check_metric(objective.name, task, ["objective", "name"])
    if objective.direction is None:
        objective.direction = default_direction(objective.name)
    for name in ("early_stopping", "reduce_lr_on_plateau"):
        callback = getattr(resolved.callbacks, name)
        if callback is not None:
            _check_metric(callback.monitor, task, ["callbacks", name, "monitor"])

    tuner = resolved.tuner
    if tuner.algorithm == "hyperband":
        if tuner.max_epochs is None:
            tuner.max_epochs = resolved.training.epochs
        schedule = hyperband_schedule_size(
            tuner.max_epochs, tuner.factor, tuner.hyperband_iterations
        )
        planned = min(schedule, tuner.max_trials or schedule)
    else:
        if tuner.max_trials is None:
            tuner.max_trials = 20
        planned = tuner.max_trials
        if tuner.algorithm == "grid":
            planned = min(planned, grid_size(space))
    assert layer_counts(space), "num_layers always has at least one value"
    return resolved.model_dump(mode="json"), space, planned
