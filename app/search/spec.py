"""The job spec a user submits, and how its defaults are filled in from the dataset.

`JobCreate` is what a user sends (most fields optional); `resolve_spec` turns it into a
`ResolvedSpec`, every default filled and every derived value decided once, at submission.
The jobs table stores `ResolvedSpec.model_dump(mode="json")`; the search process reads it
back through `load_spec`, so both sides share one set of defaults: these models'.
"""

from __future__ import annotations

import math
import reprlib
import secrets
from typing import Any, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.errors import ProblemError
from app.search.search_space import effective_search_space
from app.search.space_values import grid_size, layer_counts
from app.search.spec_limits import (
    SpecLimits,
    check_direction,
    check_numbers_and_lists,
    check_size,
)

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
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Omitted (or null): a seed is drawn at submission and recorded in the "
        "job's spec, so each job explores afresh and resubmitting with it reproduces.",
    )


class ObjectiveSpec(_Spec):
    name: str | None = Field(default=None, description="val_accuracy / val_loss by task")
    direction: Direction | None = None
    direction_override: bool = Field(
        default=False, description="allow a direction that contradicts the metric (val_loss: max)"
    )


class TrainingSpec(_Spec):
    epochs: int = Field(default=30, ge=1, le=10_000)
    validation_split: float = Field(default=0.2, gt=0, lt=1)
    test_split: float = Field(
        default=0.0,
        ge=0,
        lt=0.5,
        description="Rows held out before anything else, never seen by the search; the best "
        "model is scored on them at the end (best.test_score, best.test_metrics).",
    )


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


class PruningSpec(_Spec):
    """Median stopping (as in Katib and Google Vizier): once a trial has run `min_epochs`
    epochs, it stops at the first epoch where its best objective so far is worse than the
    median of the COMPLETED trials' best at the same epoch (at least 2 of them reached it).
    A pruned trial stays COMPLETED with the score it reached, so the oracle learns from it."""

    rule: Literal["median"] = "median"
    min_epochs: int = Field(default=3, ge=1, le=10_000)


class JobCreate(_Spec):
    dataset_id: str = Field(min_length=1, max_length=64)
    # Kept in the job's own `name` column (editable), not in the stored spec.
    name: str | None = Field(
        default=None, max_length=200, exclude=True, description="a label for the job"
    )
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
        "at the next epoch and the job succeeds with stop_reason time_budget, with its best "
        "completed trial (it fails when no trial completed in time).",
    )
    pruning: PruningSpec | None = Field(
        default=None,
        description='Omitted: {"rule": "median", "min_epochs": 3}, except for Hyperband, '
        "which prunes by its brackets (null there); null turns pruning off. The resolved "
        "spec shows the value decided.",
    )
    parallel_trials: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Trials run at once, by as many KerasTuner workers (on any worker "
        "machines) against one chief that serves the oracle. 1 runs the search in one "
        "process.",
    )


class ResolvedTuner(TunerSpec):
    """The tuner section as stored. Its remaining Nones are decisions, not defaults left for
    later: max_trials None is Hyperband's full schedule (no cap), max_epochs None an algorithm
    that has no use for it, seed None an unseeded search (stored before seeds were drawn)."""

    @model_validator(mode="after")
    def _resolved(self) -> Self:
        if self.algorithm == "hyperband" and self.max_epochs is None:
            raise ValueError("max_epochs must be resolved for hyperband")
        if self.algorithm != "hyperband" and self.max_trials is None:
            raise ValueError(f"max_trials must be resolved for {self.algorithm}")
        return self

    @property
    def rng_seed(self) -> int:
        """Keras's global RNG and the train/validation split need an integer: an unseeded
        search uses 0 there (KerasTuner itself gets `seed`, None included)."""
        return self.seed or 0


class ResolvedObjective(ObjectiveSpec):
    name: str
    direction: Direction
    # A switch for the check at submission (spec_limits.check_direction), not part of what
    # the job is: left out of the stored spec, which keeps the shape earlier versions stored.
    direction_override: bool = Field(default=False, exclude=True)


class ResolvedSpec(JobCreate):
    """A job's spec with every default filled in: what the jobs table stores and what the
    search process reads. Fields keep JobCreate's names, order and defaults, so a spec
    stored by an earlier version validates unchanged."""

    tuner: ResolvedTuner
    objective: ResolvedObjective

    @property
    def parallel(self) -> bool:
        """Whether trials run in several processes against a chief (tuner_jobs.search.chief)."""
        return self.parallel_trials > 1


class StoredSpecError(ValueError):
    """A job's stored spec that no longer validates (edited in the database, or written
    by an incompatible version): the job fails with this message."""


def load_spec(stored: Any) -> ResolvedSpec:
    """The stored spec (the jobs table's JSON), validated again; raises StoredSpecError
    naming each bad field."""
    try:
        return ResolvedSpec.model_validate(stored)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'spec'}: {error['msg']}"
            f" (got {reprlib.repr(error['input'])})"
            for error in exc.errors()
        )
        raise StoredSpecError(f"the job's stored spec is not valid: {problems}") from None


class Resolution(NamedTuple):
    """What a submission stores besides its status: the spec, the effective search space
    (the defaults seeded from the dataset, with the spec's overrides), the trials planned."""

    spec: ResolvedSpec
    search_space: dict[str, Any]
    trials_planned: int


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
    spec: JobCreate, *, task: str, features: int, limits: SpecLimits | None = None
) -> Resolution:
    """Fill the spec's defaults for this dataset (raises ProblemError on a metric the
    task's model does not log, and past app.search.spec_limits' caps)."""
    check_numbers_and_lists(spec.model_dump())
    space = effective_search_space(spec.search_space, features=features)
    resolved = spec.model_copy(deep=True)
    objective = resolved.objective
    if objective.name is None:
        objective.name = "val_accuracy" if task == "classification" else "val_loss"
    _check_metric(objective.name, task, ["objective", "name"])
    if objective.direction is None:
        objective.direction = default_direction(objective.name)
    check_direction(
        objective.name,
        objective.direction,
        override=objective.direction_override,
        loc=["objective"],
    )
    for name in ("early_stopping", "reduce_lr_on_plateau"):
        callback = getattr(resolved.callbacks, name)
        if callback is not None:
            _check_metric(callback.monitor, task, ["callbacks", name, "monitor"])

    tuner = resolved.tuner
    if "pruning" not in spec.model_fields_set:
        resolved.pruning = None if tuner.algorithm == "hyperband" else PruningSpec()
    if tuner.seed is None:
        tuner.seed = secrets.randbelow(2**31)
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
    check_size(resolved, space, trials=planned, features=features, limits=limits or SpecLimits())
    # Validated, not copied field by field: ResolvedSpec's own checks run at submission too.
    return Resolution(ResolvedSpec.model_validate(resolved.model_dump()), space, planned)
