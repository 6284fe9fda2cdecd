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
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import Field, ValidationError, field_validator, model_validator

from app.errors import ProblemError
from app.search.folds import resolve_folds, training_rows
from app.search.objectives import one_or_list, resolve_objectives
from app.search.search_space import effective_search_space
from app.search.space_values import grid_size, layer_counts
from app.search.spec_limits import (
    SpecLimits,
    check_direction,
    check_numbers_and_lists,
    check_size,
    fit_default_units,
)
from app.search.spec_sections import (
    Algorithm,
    CallbacksSpec,
    CrossValidationSpec,
    Direction,
    ObjectiveSpec,
    PruningSpec,
    ResolvedTraining,
    SpecModel,
    TrainingSpec,
    TunerSpec,
)
from app.search.training_length import (
    Derivation,
    auto_budget,
    default_batches,
    end_phase_seconds,
    epochs_for,
    fit_rows,
    largest_batch,
    patience_for,
    rung_for,
    steps_per_epoch,
    trial_estimate_s,
)
from app.search.warm_start_resolution import (
    ResolvedWarmStart,
    WarmStartSource,
    WarmStartSpec,
    resolve_warm_start,
)

# parallel_trials "auto": its chief opens this many tuner slots at most (the cap's bound).
AUTO_MAX_TUNERS = 64

# A job's notes (JobCreate, and PATCH /jobs/{id}'s JobUpdate): a page of text, not a file.
MAX_NOTES = 10_000

# What each task's model is compiled with (see tuner_jobs.search.model_builder).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy",),
    "regression": ("mae",),
}
MAXIMIZED = {"accuracy"}


class JobCreate(SpecModel):
    dataset_id: str = Field(min_length=1, max_length=64)
    # Kept in the job's own `name` column (editable), not in the stored spec.
    name: str | None = Field(
        default=None, max_length=200, exclude=True, description="a label for the job"
    )
    notes: str | None = Field(
        default=None,
        max_length=MAX_NOTES,
        exclude=True,
        description="free text on the job (what was tried, why); PATCH /jobs/{id} changes it",
    )
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    objective: ObjectiveSpec | list[ObjectiveSpec] = Field(
        default_factory=ObjectiveSpec,
        description="One {name, direction}, or a list of them (tpe and nsga2 only): a "
        "multi-objective search and its Pareto front (app.search.objectives)",
    )
    _one_or_list = field_validator("objective", mode="wrap")(one_or_list(ObjectiveSpec))
    search_space: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the seeded default search space, by hyperparameter name",
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    callbacks: CallbacksSpec = Field(default_factory=CallbacksSpec)
    max_runtime_s: Annotated[float, Field(gt=0, le=30 * 24 * 3600)] | Literal["auto"] | None = (
        Field(
            default="auto",
            description="Wall-clock budget of the whole job from its first start, its end "
            "phase (refit, baselines, test score, ensemble, exports) included: the search "
            "stops early enough for it, and the job succeeds with stop_reason time_budget "
            "with its best completed trial (it fails when no trial completed in time). "
            'Omitted with no tuner.max_trials, or "auto": derived from the table\'s size and '
            "the workers (app.search.training_length); null: no budget.",
        )
    )
    pruning: PruningSpec | None = Field(
        default=None,
        description='Omitted: {"rule": "median", "min_epochs": 3}, except for Hyperband, '
        "which prunes by its brackets (null there); null turns pruning off. The resolved "
        "spec shows the value decided.",
    )
    parallel_trials: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        default="auto",
        description="Trials run at once, by KerasTuner workers (on any worker machines) "
        'against one chief that serves the oracle. "auto": as many as there are idle '
        "workers, each handed back between trials when another job waits; a number: at "
        "most that many, taken before queued jobs; 1 runs the search in one process.",
    )
    warm_start: WarmStartSpec | Literal["auto"] | None = Field(
        default=None,
        description='{"jobs": [ids], "top_k": 5}: the top_k best completed trials of each '
        "of those jobs (the caller's) are tried first, those that fit this search space; "
        '"auto": the same from the caller\'s 5 latest succeeded jobs on the same data '
        "(same file and target). The resolved spec lists the configurations and how many "
        "were skipped and why.",
    )

    @field_validator("warm_start", mode="wrap")
    @classmethod
    def _warm_start_error_names_the_field(cls, value: Any, handler: Any) -> Any:
        # As cross_validation's: an error names warm_start.top_k, not the union's member.
        if isinstance(value, dict):
            return WarmStartSpec.model_validate(value)
        return handler(value)


class ResolvedTuner(TunerSpec):
    """The tuner section as stored. Its remaining Nones are decisions, not defaults left for
    later: max_trials None is Hyperband's full schedule (no cap), max_epochs None an algorithm
    that has no use for it, seed None an unseeded search (stored before seeds were drawn)."""

    # Decided at submission (resolve_algorithm) and stored with every job; specs stored
    # before the choice existed name it too (hyperband was then the field's default).
    algorithm: Algorithm = "hyperband"

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
    objective: ResolvedObjective | list[ResolvedObjective]
    _one_or_list = field_validator("objective", mode="wrap")(one_or_list(ResolvedObjective))
    training: ResolvedTraining
    max_runtime_s: float | None = None  # type: ignore[assignment]
    # What the derived values came from; None in specs stored before they were derived.
    derivation: Derivation | None = None
    # Resolved at submission (app.search.warm_start_resolution): the configurations themselves.
    warm_start: ResolvedWarmStart | None = None  # type: ignore[assignment]

    @field_validator("warm_start", mode="wrap")
    @classmethod
    def _warm_start_error_names_the_field(cls, value: Any, handler: Any) -> Any:
        # Replaces JobCreate's (same name): a stored warm start is a ResolvedWarmStart.
        return handler(value)

    @property
    def parallel(self) -> bool:
        """Whether trials run in several processes against a chief (tuner_jobs.search.chief)."""
        return self.parallel_trials == "auto" or self.parallel_trials > 1

    @property
    def max_tuners(self) -> int:
        """The most trials at once: the cap given, or the field's own for "auto"."""
        return AUTO_MAX_TUNERS if self.parallel_trials == "auto" else self.parallel_trials

    @property
    def budget_waits_for_a_trial(self) -> bool:
        """A budget the service chose (`"auto"`) never fails a job for want of a completed
        trial: the search stops at the first trial's end instead. A user's own budget is
        kept to, and a job it leaves with no trial fails (outcomes.NO_TRIAL_IN_BUDGET)."""
        return self.derivation is not None and self.derivation.budget_source == "auto"

    @property
    def search_seconds(self) -> float | None:
        """Seconds from the job's first start after which the search stops: its budget less
        what is kept for the end phase (None: no budget)."""
        if self.max_runtime_s is None:
            return None
        kept = self.derivation.end_phase_s if self.derivation is not None else 0.0
        return self.max_runtime_s - kept

    @property
    def objectives(self) -> list[ResolvedObjective]:
        """Every objective, in order (one for a single-objective job)."""
        return self.objective if isinstance(self.objective, list) else [self.objective]

    @property
    def primary_objective(self) -> ResolvedObjective:
        """KerasTuner's objective: the score, early stopping's peer, the checkpointed epoch."""
        return self.objectives[0]


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


def with_budget(stored: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    """A stored spec with a new time budget (the user's), its end-phase share with it."""
    spec = load_spec(stored)
    spec.max_runtime_s = seconds
    derivation = spec.derivation or Derivation()
    derivation.budget_source = None if seconds is None else "user"
    derivation.workers = derivation.train_rows = None
    derivation.derived = [name for name in derivation.derived if name != "max_runtime_s"]
    derivation.end_phase_s = 0.0 if seconds is None else end_phase_seconds(seconds)
    spec.derivation = derivation
    return spec.model_dump(mode="json")


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


def hyperband_schedule_size(
    max_epochs: int, factor: int, iterations: int, min_epochs: int | None = None
) -> int:
    """Trials KerasTuner's Hyperband oracle creates (mirrors HyperbandOracle's bracket
    sizes; `min_epochs`, its smallest rung, sets how many brackets it opens)."""
    brackets, epochs = 0, float(max_epochs)
    while epochs >= (min_epochs or 1):
        epochs /= factor
        brackets += 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    per_iteration = sum(
        math.ceil(end_size / (b + 1) * factor ** (b - r))
        for b in range(brackets)
        for r in range(b + 1)
    )
    return per_iteration * iterations


# Trials of a search without max_trials: a fixed number, or under a time budget as many as
# fit in it (the budget ends the search), within this cap and TUNER_MAX_SEARCH_EPOCHS.
DEFAULT_MAX_TRIALS = 20
BUDGETED_MAX_TRIALS = 1000


def resolve_algorithm(spec: JobCreate, budget: float | None) -> Algorithm:
    """The algorithm asked for, or the default: Hyperband, except under a time budget.
    Hyperband plans a schedule of brackets for its trial count, opening with its most
    exploratory one (many trials of a few epochs); a budget ends it inside that bracket,
    so its winner has trained a few epochs. TPE trains each trial to its early stop under
    median pruning and gets better as long as the budget lasts (docs/benchmarks.md,
    make bench-search)."""
    if spec.tuner.algorithm is not None:
        return spec.tuner.algorithm
    return "hyperband" if budget is None else "tpe"


def default_max_trials(spec: JobCreate, limits: SpecLimits, budget: float | None) -> int:
    """max_trials when omitted, for an algorithm other than Hyperband."""
    if budget is None:
        return DEFAULT_MAX_TRIALS
    per_trial = spec.training.epochs * spec.tuner.executions_per_trial
    return max(1, min(BUDGETED_MAX_TRIALS, limits.max_search_epochs // per_trial))


def resolve_budget(spec: JobCreate, *, train_rows: int | None, workers: int) -> float | None:
    """max_runtime_s: the user's number or null, or the derived default ("auto", or omitted
    by a job that gives no max_trials either: a job that names its trials runs them all)."""
    if spec.max_runtime_s != "auto":
        return spec.max_runtime_s
    if "max_runtime_s" not in spec.model_fields_set and spec.tuner.max_trials is not None:
        return None
    return auto_budget(train_rows if train_rows is not None else 150, workers)


def _derive_lengths(resolved: JobCreate, steps: int, derived: list[str]) -> None:
    """Fill the training lengths the user left out from the steps an epoch takes."""
    training = resolved.training
    if "epochs" not in training.model_fields_set:
        training.epochs = epochs_for(steps)
        derived.append("training.epochs")
    early = resolved.callbacks.early_stopping
    if early is not None and "patience" not in early.model_fields_set:
        early.patience = patience_for(steps)
        derived.append("callbacks.early_stopping.patience")
    plateau = resolved.callbacks.reduce_lr_on_plateau
    if plateau is not None and "patience" not in plateau.model_fields_set:
        # Lower the learning rate well before early stopping would give up.
        plateau.patience = max(2, patience_for(steps) // 2)
        derived.append("callbacks.reduce_lr_on_plateau.patience")
    rung = rung_for(steps, training.epochs)
    if resolved.pruning is not None and "min_epochs" not in resolved.pruning.model_fields_set:
        resolved.pruning.min_epochs = rung
        derived.append("pruning.min_epochs")
    tuner = resolved.tuner
    if tuner.algorithm == "hyperband":
        if tuner.max_epochs is None:
            tuner.max_epochs = training.epochs
            derived.append("tuner.max_epochs")
        if tuner.min_epochs is None:
            tuner.min_epochs = rung_for(steps, tuner.max_epochs)
            derived.append("tuner.min_epochs")


def resolve_spec(
    spec: JobCreate,
    *,
    task: str,
    features: int,
    limits: SpecLimits | None = None,
    rows: int | None = None,
    smallest_class: Callable[[], int] | None = None,
    warm_start: WarmStartSource | None = None,
    workers: int = 1,
) -> Resolution:
    """Fill the spec's defaults for this dataset (raises ProblemError on a metric the
    task's model does not log, and past app.search.spec_limits' caps). `rows`: the
    dataset's, and `smallest_class`: its rarest class's row count, read only when folds
    are asked for (app.search.folds); without `rows`, "auto" is one validation split."""
    check_numbers_and_lists(spec.model_dump())
    resolved = spec.model_copy(deep=True)
    training = resolved.training
    cv = training.cross_validation
    folds = resolve_folds(
        cv.folds if isinstance(cv, CrossValidationSpec) else cv,
        test_split=training.test_split,
        classification=task == "classification",
        rows=rows,
        smallest_class=smallest_class,
    )
    training.cross_validation = None if folds is None else CrossValidationSpec(folds=folds)
    per_fit = (
        None
        if rows is None
        else fit_rows(
            rows,
            test_split=training.test_split,
            folds=folds,
            validation_split=training.validation_split,
        )
    )
    space = effective_search_space(
        spec.search_space,
        features=features,
        batches=None if per_fit is None else default_batches(per_fit),
    )
    train_rows = None if rows is None else training_rows(rows, training.test_split)
    budget = resolve_budget(spec, train_rows=train_rows, workers=workers)
    resolved.max_runtime_s = budget
    resolved.tuner.algorithm = resolve_algorithm(spec, budget)
    listed = isinstance(resolved.objective, list)
    resolve_objectives(
        resolved.objective if listed else [resolved.objective],  # type: ignore[list-item]
        listed=listed,
        algorithm=resolved.tuner.algorithm,
        task=task,
        known=metric_names(task),
        default_name="val_accuracy" if task == "classification" else "val_loss",
        default_direction=default_direction,
        check_direction=check_direction,
    )
    for name in ("early_stopping", "reduce_lr_on_plateau"):
        callback = getattr(resolved.callbacks, name)
        if callback is not None:
            _check_metric(callback.monitor, task, ["callbacks", name, "monitor"])

    tuner = resolved.tuner
    if "pruning" not in spec.model_fields_set:
        resolved.pruning = None if tuner.algorithm == "hyperband" else PruningSpec()
    derivation = Derivation(
        budget_source=None
        if budget is None
        else "auto"
        if spec.max_runtime_s == "auto"
        else "user",
        end_phase_s=0.0 if budget is None else end_phase_seconds(budget),
    )
    if derivation.budget_source == "auto":
        derivation.workers = workers
        derivation.train_rows = train_rows
        derivation.derived.append("max_runtime_s")
    if per_fit is not None:
        derivation.fit_rows = per_fit
        derivation.batch_size = largest_batch(space)
        derivation.steps_per_epoch = steps_per_epoch(per_fit, derivation.batch_size)
        _derive_lengths(resolved, derivation.steps_per_epoch, derivation.derived)
        derivation.trial_estimate_s = trial_estimate_s(
            derivation.steps_per_epoch,
            resolved.training.epochs,
            (folds or 1) * resolved.tuner.executions_per_trial,
        )
        search_s = None if budget is None else budget - derivation.end_phase_s
        if search_s is not None and search_s < derivation.trial_estimate_s:
            # Accepted: early stopping usually ends a trial long before its cap.
            derivation.note = (
                f"the search's {search_s:.0f} s of the {budget:.0f} s budget may be shorter "
                f"than one trial (up to about {derivation.trial_estimate_s:.0f} s): expect "
                "few trials, or none"
            )
    if tuner.seed is None:
        tuner.seed = secrets.randbelow(2**31)
    if tuner.algorithm == "hyperband":
        if tuner.max_epochs is None:
            tuner.max_epochs = resolved.training.epochs
        schedule = hyperband_schedule_size(
            tuner.max_epochs, tuner.factor, tuner.hyperband_iterations, tuner.min_epochs
        )
        planned = min(schedule, tuner.max_trials or schedule)
    else:
        if tuner.max_trials is None:
            tuner.max_trials = default_max_trials(resolved, limits or SpecLimits(), budget)
        planned = tuner.max_trials
        if tuner.algorithm == "grid":
            planned = min(planned, grid_size(space))
    # `warm_start`: the caller's jobs, read when the spec asks for a warm start.
    warm = resolve_warm_start(spec.warm_start, space=space, source=warm_start)
    if warm is not None and tuner.algorithm == "grid" and tuner.max_trials is not None:
        # The warm-started trials run before the grid's own, within max_trials.
        planned = min(tuner.max_trials, grid_size(space) + len(warm.configurations))
    assert layer_counts(space), "num_layers always has at least one value"
    limits = limits or SpecLimits()
    if "units" not in spec.search_space and fit_default_units(
        space, features=features, limits=limits
    ):
        derivation.derived.append("search_space.units.max")
    check_size(resolved, space, trials=planned, features=features, limits=limits)
    # Validated, not copied field by field: ResolvedSpec's own checks run at submission too.
    stored = resolved.model_dump()
    stored["warm_start"] = None if warm is None else warm.model_dump()
    stored["derivation"] = derivation.model_dump()
    return Resolution(ResolvedSpec.model_validate(stored), space, planned)
