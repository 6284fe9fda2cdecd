"""A job's answer (progress, current trial, best so far) and a trial's (with its curve),
built from rows read through app.store.reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select

from app.schemas import (
    BestSoFar,
    CurrentTrial,
    EpochRead,
    JobRead,
    Progress,
    TrialDetail,
    TrialRead,
)
from app.settings import Settings
from app.store.disk_usage import cached_directory_bytes
from app.store.job_files import job_dir
from app.store.models import JobStatus, TrialStatus, utcnow
from app.store.reads import TRIALS, JobRow, TrialRow, best_trials, epochs_of

# Keyed by the ids of jobs just read through app.store.reads.readable, in the same
# transaction: these only count and pick among those jobs' trials.
_IDS = bindparam("ids", expanding=True)

# Per job: trials COMPLETED (not failed, nor stopped mid-way), epochs recorded (one grouped
# query, index-only).
_PROGRESS = (
    select(
        TRIALS.c.job_id,
        func.count(TRIALS.c.id).filter(TRIALS.c.status == TrialStatus.COMPLETED),
        func.coalesce(func.sum(TRIALS.c.epochs_run), 0),
    )
    .where(TRIALS.c.job_id.in_(_IDS))
    .group_by(TRIALS.c.job_id)
)

# Sorted in Python, not in SQL: an ORDER BY started_at could lead the planner to walk
# the job's trials in start order instead of looking up its few RUNNING ones by status.
_RUNNING = select(
    TRIALS.c.job_id,
    TRIALS.c.trial_id,
    TRIALS.c.epochs_run,
    TRIALS.c.fold_scores,
    TRIALS.c.hyperparameters,
    TRIALS.c.started_at,
).where(TRIALS.c.job_id.in_(_IDS), TRIALS.c.status == TrialStatus.RUNNING)


def _progress(db: Connection, job_ids: list[str]) -> dict[str, tuple[int, int]]:
    rows = db.execute(_PROGRESS, {"ids": job_ids}).all()
    return {job_id: (int(done), int(epochs)) for job_id, done, epochs in rows}


def _current_trials(db: Connection, jobs: list[JobRow]) -> dict[str, Row[Any]]:
    """The latest-started RUNNING trial of each running job."""
    ids = [job.id for job in jobs if job.status == JobStatus.RUNNING]
    if not ids:
        return {}
    rows = db.execute(_RUNNING, {"ids": ids}).all()
    latest: dict[str, Row[Any]] = {}
    for trial in sorted(rows, key=lambda t: (t.started_at, t.trial_id)):
        latest[trial.job_id] = trial
    return latest


def job_reads(
    db: Connection, jobs: Sequence[JobRow], *, settings: Settings | None = None
) -> list[JobRead]:
    """JobRead for each of `jobs` (rows read through app.store.reads) with at most four
    queries, however many jobs; with `settings`, each claimed job's `disk_bytes` too."""
    # A job no worker ever claimed (attempt 0) has no trials: nothing to look up. That is
    # every job answered by POST /jobs, and the queued part of a list.
    ran = [job for job in jobs if not (job.status == JobStatus.QUEUED and job.attempt == 0)]
    progress = _progress(db, [job.id for job in ran]) if ran else {}
    running = _current_trials(db, ran)
    best = best_trials(db, ran)
    reads = [
        _job_read(job, progress.get(job.id, (0, 0)), running.get(job.id), best.get(job.id))
        for job in jobs
    ]
    if settings is not None:
        for read in reads:
            # A job no worker has claimed yet has no directory to walk.
            if read.attempt > 0:
                read.disk_bytes = cached_directory_bytes(job_dir(settings, read.id), read.status)
    return reads


def job_read(db: Connection, job: JobRow, *, settings: Settings) -> JobRead:
    """One job's answer, as in a list (`job_reads`)."""
    return job_reads(db, [job], settings=settings)[0]


def _folds_completed(job: JobRow, fold_scores: list[Any] | None) -> int | None:
    """A running trial's finished folds (0 before its first): None without folds."""
    training = (job.spec or {}).get("training") or {}
    if not training.get("cross_validation"):
        return None
    return len(fold_scores or [])


def _job_read(
    job: JobRow, progress: tuple[int, int], running: Row[Any] | None, best: Row[Any] | None
) -> JobRead:
    completed, epochs = progress
    return JobRead(
        id=job.id,
        name=job.name,
        status=job.status,
        dataset_id=job.dataset_id,
        # Read with the job (app.store.reads._jobs); a row fresh from INSERT has none.
        dataset_name=getattr(job, "dataset_name", None),
        spec=job.spec,
        search_space=job.search_space,
        progress=Progress(
            trials_completed=completed,
            trials_planned=job.trials_planned,
            current_trial=CurrentTrial(
                trial_id=running.trial_id,
                epochs_run=running.epochs_run,
                folds_completed=_folds_completed(job, running.fold_scores),
                hyperparameters=running.hyperparameters,
                started_at=running.started_at,
            )
            if running is not None
            else None,
            epochs_run=epochs,
            **_time_progress(job),
        ),
        best=BestSoFar(
            trial_id=best.trial_id,
            score=best.score,
            hyperparameters=best.hyperparameters,
            **_test_scores(job, best.trial_id),
        )
        if best is not None and best.score is not None
        else None,
        baselines=job.baselines,
        ensemble=job.ensemble,
        verdict=job.verdict,
        notes=job.notes,
        error=job.error,
        stop_reason=job.stop_reason,
        attempt=job.attempt,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _time_progress(job: JobRow) -> dict[str, float | None]:
    """budget_s, elapsed_s and remaining_s: a budgeted job's progress is its time."""
    budget = (job.spec or {}).get("max_runtime_s")
    if job.started_at is None:
        return {"budget_s": budget, "elapsed_s": None, "remaining_s": budget}
    elapsed = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
    remaining = None if budget is None else round(max(0.0, budget - elapsed), 1)
    return {"budget_s": budget, "elapsed_s": round(elapsed, 1), "remaining_s": remaining}


def _test_scores(job: JobRow, trial_id: str) -> dict[str, Any]:
    """The held-out score, when it was taken of this very trial's model."""
    metrics = job.test_metrics
    if not metrics or metrics.get("trial_id") != trial_id:
        return {}
    return {"test_score": metrics.get("score"), "test_metrics": metrics}


def trial_reads(trials: Sequence[Row[Any]]) -> list[TrialRead]:
    # From a dict, not the row's attributes: less of pydantic's time per trial.
    return [TrialRead.model_validate(t._asdict()) for t in trials]


def _epoch_read(row: Row[Any]) -> EpochRead:
    values: dict[str, Any] = dict(row.metrics)
    values.update(
        epoch=row.epoch, loss=row.loss, val_loss=row.val_loss, learning_rate=row.learning_rate
    )
    return EpochRead.model_validate(values)


def trial_detail(db: Connection, trial: TrialRow) -> TrialDetail:
    """The trial with its per-epoch metrics."""
    read = TrialRead.model_validate(trial, from_attributes=True)
    metrics = [_epoch_read(row) for row in epochs_of(db, trial)]
    return TrialDetail(**read.model_dump(), metrics=metrics)
