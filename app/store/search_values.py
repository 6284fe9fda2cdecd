"""The plain values a search process and the store hand each other: the job and dataset
it searches, a trial's end, what its model card reads back, its job's tuner slots.

No SQL here: tuner_jobs.search, which must not import SQLAlchemy or the models, holds
these instead of rows. The SQL that fills them is in app.store.search_reads,
app.store.trial_records and app.store.slot_queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# One recorded epoch as the overfitting assessment reads it: (epoch, loss, val_loss).
EpochLosses = tuple[int, float | None, float | None]
# The recorder's judgement of a trial's curve: (overfit epoch, generalization gap).
CurveJudge = Callable[[list[EpochLosses]], tuple[int | None, float | None]]


@dataclass(frozen=True)
class SearchDataset:
    """The fields of a dataset the search reads: where its upload is (sha256, format), how
    to read it, and what the model card says of it."""

    id: str
    name: str
    sha256: str
    format: str
    rows: int
    rows_dropped: int
    target: str
    task: str
    classes: list[Any] | None
    columns: list[dict[str, Any]]


@dataclass(frozen=True)
class SearchJob:
    """The fields of a job the search reads, read once when its process starts."""

    id: str
    name: str | None
    spec: dict[str, Any]
    search_space: dict[str, Any]
    trials_planned: int
    dataset: SearchDataset


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended. The defaults are for a trial whose process died before writing it
    down: its early stop, message and duration are not known."""

    status: str
    score: float | None
    best_epoch: int | None
    stopped_early: bool = False
    message: str | None = None
    duration_s: float | None = None
    pruned: bool = False
    # Each objective's value, for a multi-objective job's trial.
    objectives: dict[str, float | None] | None = None
    # Each fold's score, for a cross-validated job's trial.
    fold_scores: list[float | None] | None = None


@dataclass(frozen=True)
class CardTrial:
    """A trial as the model card reports it."""

    hyperparameters: dict[str, Any]
    score: float | None
    fold_scores: list[Any] | None
    best_epoch: int | None
    epochs_run: int
    stopped_early: bool
    duration_s: float | None


@dataclass(frozen=True)
class CardFacts:
    """What the model card reads back from the job's rows, so it says what GET /jobs/{id}
    says. `trials`: the trials asked for that exist, by KerasTuner trial id."""

    started_at: datetime | None
    baselines: dict[str, Any] | None
    test_metrics: dict[str, Any] | None
    trials_completed: int
    trials: dict[str, CardTrial]


@dataclass(frozen=True)
class TunerSlot:
    """One tuner slot of a parallel job, as its chief looks after it."""

    slot: int
    tuner_id: str
    failed: bool
    error: str | None
