"""Response bodies (the request bodies live in app.search.spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.search.search_space import recommended_units, units_range
from app.search.spec import MAX_NOTES
from app.store.models import Dataset, JobStatus, TrialStatus

T = TypeVar("T")

# A list's `offset` cap: past any real table, and within every backend's integer range
# (an unbounded one overflowed SQLite's INTEGER and PostgreSQL's bigint: a 500).
MAX_OFFSET = 2**31 - 1


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ColumnRead(BaseModel):
    name: str
    kind: str = Field(description="numeric or categorical")
    missing: int
    categories: int | None = Field(default=None, description="vocabulary size (categorical)")


class DatasetSummary(BaseModel):
    """A dataset in a list: everything but its column profile (GET /datasets/{id} has it)."""

    id: str
    name: str
    format: str
    rows: int
    rows_dropped: int = Field(description="rows without a target value, left out")
    input_column_count: int = Field(description="how many input columns (the target aside)")
    features: int = Field(description="input width after encoding")
    target: str
    task: str
    classes: list[Any] | None
    sha256: str
    size_bytes: int
    recommended_units: int
    units_range: tuple[int, int]
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> DatasetSummary:
        """From a row of app.store.reads.dataset_page (a Dataset's columns, with
        `input_column_count` counted by the database)."""
        return cls(
            id=row.id,
            name=row.name,
            format=row.format,
            rows=row.rows,
            rows_dropped=row.rows_dropped,
            input_column_count=row.input_column_count,
            features=row.features,
            target=row.target,
            task=row.task,
            classes=row.classes,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            recommended_units=recommended_units(row.features),
            units_range=units_range(row.features),
            created_at=row.created_at,
        )


class DatasetRead(BaseModel):
    id: str
    name: str
    format: str
    rows: int
    rows_dropped: int = Field(description="rows without a target value, left out")
    input_columns: list[str]
    columns: list[ColumnRead]
    features: int = Field(description="input width after encoding")
    target: str
    task: str
    classes: list[Any] | None
    missing: dict[str, int] = Field(description="missing values per column, target included")
    sha256: str
    size_bytes: int
    recommended_units: int
    units_range: tuple[int, int]
    created_at: datetime

    @classmethod
    def of(cls, ds: Dataset) -> DatasetRead:
        missing = {c["name"]: c["missing"] for c in ds.columns}
        missing[ds.target] = ds.rows_dropped
        return cls(
            id=ds.id,
            name=ds.name,
            format=ds.format,
            rows=ds.rows,
            rows_dropped=ds.rows_dropped,
            input_columns=[c["name"] for c in ds.columns],
            columns=[
                ColumnRead(
                    name=c["name"],
                    kind=c["kind"],
                    missing=c["missing"],
                    categories=len(c["vocabulary"]) if c["kind"] == "categorical" else None,
                )
                for c in ds.columns
            ],
            features=ds.features,
            target=ds.target,
            task=ds.task,
            classes=ds.classes,
            missing=missing,
            sha256=ds.sha256,
            size_bytes=ds.size_bytes,
            recommended_units=recommended_units(ds.features),
            units_range=units_range(ds.features),
            created_at=ds.created_at,
        )


class TrialRead(BaseModel):
    trial_id: str
    status: TrialStatus
    hyperparameters: dict[str, Any]
    score: float | None
    best_epoch: int | None
    epochs_run: int
    stopped_early: bool
    pruned: bool = Field(
        default=False,
        description="stopped by the job's pruning rule (below the median of the completed "
        "trials at the same epoch); still COMPLETED, with the score it reached",
    )
    origin: Literal["search", "warm_start"] = Field(
        default="search",
        description="warm_start: a configuration replayed from an earlier job (the spec's "
        "warm_start); search: one the algorithm chose",
    )
    origin_job_id: str | None = Field(
        default=None, description="the job a warm-started trial's configuration came from"
    )
    objectives: dict[str, float | None] | None = Field(
        default=None,
        description="a multi-objective job's trial (objective given as a list): each "
        "objective's value at the trial's best epoch, by name; null otherwise",
    )
    fold_scores: list[float | None] | None = Field(
        default=None,
        description="a cross-validated job's trial (training.cross_validation): each "
        "fold's best objective, in fold order; `score` is their mean. Null otherwise",
    )
    duration_s: float | None
    worker: str | None = Field(
        default=None, description="the worker (host:pid:id) whose search process ran the trial"
    )
    overfit_epoch: int | None = Field(
        default=None,
        description="last epoch before validation loss rose for `patience` epochs in a row "
        "while training loss fell (the job's EarlyStopping patience, else 5); null if never",
    )
    generalization_gap: float | None = Field(
        default=None, description="val_loss - loss at the best epoch"
    )
    message: str | None = None
    started_at: datetime
    finished_at: datetime | None


class EpochRead(BaseModel):
    model_config = {"extra": "allow"}

    epoch: int
    loss: float | None
    val_loss: float | None
    learning_rate: float | None


class TrialDetail(TrialRead):
    metrics: list[EpochRead]


class CurrentTrial(BaseModel):
    trial_id: str
    epochs_run: int
    folds_completed: int | None = Field(
        default=None,
        description="with cross-validation, the folds this trial has finished (of "
        "spec.training.cross_validation.folds); its curve's epochs are means over the "
        "folds, so its epochs_run does not grow between them. null: one validation split",
    )
    hyperparameters: dict[str, Any]
    started_at: datetime


class Progress(BaseModel):
    trials_completed: int
    trials_planned: int
    current_trial: CurrentTrial | None
    epochs_run: int = Field(description="epochs recorded over all trials")
    budget_s: float | None = Field(
        default=None,
        description="the job's time budget (spec.max_runtime_s; null: none): a budgeted "
        "job's progress is its time, trials_planned only a cap",
    )
    elapsed_s: float | None = Field(
        default=None, description="seconds since the job's first start (until it finished)"
    )
    remaining_s: float | None = Field(
        default=None, description="seconds of the budget left (0 once spent; null: no budget)"
    )


class BestSoFar(BaseModel):
    trial_id: str
    score: float
    hyperparameters: dict[str, Any]
    test_score: float | None = Field(
        default=None,
        description="this model's objective on the held-out test rows (training.test_split), "
        "scored once the search has ended",
    )
    test_metrics: dict[str, Any] | None = Field(
        default=None,
        description="score, metric, rows, loss and metrics as Keras computes them; "
        "confusion_matrix and labels (classification) or mae, rmse, r2 (regression)",
    )


class EnsembleMember(BaseModel):
    trial_id: str
    weight: float = Field(description="its share of the ensemble's average (weights sum to 1)")


class EnsembleRead(BaseModel):
    members: list[EnsembleMember]
    score: float | None = Field(
        description="the ensemble's objective on the trials' out-of-fold predictions (the "
        "validation rows' with one split), as a trial's score: the mean over the same folds"
    )
    trial_score: float | None = Field(
        default=None,
        description="the best trial's, computed the same way from its own predictions",
    )
    test_score: float | None = Field(
        default=None, description="on the held-out test rows, when the ensemble is used"
    )
    used: bool = Field(
        description="whether it is the job's model (/model, /predict, the model card): it "
        "scores strictly better than the best trial; ?source=trial gives that trial's"
    )
    metric: str | None = Field(default=None, description="the objective it was selected on")
    members_are: str | None = Field(
        default=None,
        description="`refit`: each member is its trial refit on every training row "
        "(cross-validation); `trial_models`: its trial's network (one validation split)",
    )


class JobRead(BaseModel):
    id: str
    name: str | None = Field(default=None, description="the user's label (PATCH changes it)")
    status: JobStatus
    dataset_id: str
    dataset_name: str | None = Field(
        default=None, description="the dataset's name, read with the job (null if it has none)"
    )
    spec: dict[str, Any]
    search_space: dict[str, Any]
    progress: Progress
    best: BestSoFar | None
    baselines: dict[str, Any] | None = Field(
        default=None,
        description='{"linear": {"score", "test_score"}, "gradient_boosting": {...}}: '
        "scikit-learn models scored on the search's validation rows with its objective",
    )
    ensemble: EnsembleRead | None = Field(
        default=None,
        description="the greedy ensemble of the job's best trials (training.ensemble), once "
        "the search has ended; null: off, a multi-objective job, or not yet",
    )
    verdict: str | None = Field(
        default=None,
        description="one line when a baseline scores above the job's model (its ensemble "
        "when used, else its best trial) on the same folds; null otherwise",
    )
    notes: str | None = Field(
        default=None, description="the user's free text on the job (PATCH changes it)"
    )
    error: str | None
    stop_reason: str | None = Field(
        default=None,
        description="why a finished job ended: completed, time_budget (max_runtime_s ran out "
        "after at least one trial completed), cancelled or failed",
    )
    attempt: int
    cancel_requested: bool
    disk_bytes: int = Field(
        default=0, description="size of the job's files: KerasTuner project, best model, logs"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPreview(BaseModel):
    """POST /jobs/preview: what a submission would queue, nothing queued."""

    spec: dict[str, Any] = Field(
        description="the resolved spec (its derivation says what was derived and from what)"
    )
    search_space: dict[str, Any]
    trials_planned: int = Field(description="the trials planned (a cap under a time budget)")
    max_runtime_s: float | None = Field(
        description="the job's time budget, end phase included (null: none)"
    )


class ParetoTrial(BaseModel):
    trial_id: str
    objectives: dict[str, float] = Field(description="each objective's value, by name")
    hyperparameters: dict[str, Any]


class ParetoFront(BaseModel):
    items: list[ParetoTrial] = Field(
        description="the completed trials no other trial dominates (as good on every "
        "objective and better on one), in the order they were created"
    )
    objectives: list[dict[str, str]] = Field(
        description="the job's objectives, [{name, direction}], in the spec's order"
    )


class JobUpdate(BaseModel):
    """What PATCH /jobs/{id} may change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, max_length=200, description="a label for the job; null clears it"
    )
    notes: str | None = Field(
        default=None,
        max_length=MAX_NOTES,
        description="free text on the job, at any point of its life (a finished job's "
        "too); null clears it",
    )
    max_runtime_s: float | None = Field(
        default=None,
        gt=0,
        le=30 * 24 * 3600,
        description="a queued or running job's new time budget, counted from its first "
        "start, its end phase included (null: none); one already spent stops the search at "
        "the next heartbeat, and the job ends as a budgeted job does",
    )


class Health(BaseModel):
    status: str
    database: str
