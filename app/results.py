"""Read side of a job's results: progress, best trial, trial pages and curves.

Everything here starts from a Job the caller may see (routes fetch it with
`get_job_or_404(session, id, owner)`), so trials need no ownership check of their own.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from app.db import storable
from app.models import Job, JobStatus, Trial, TrialEpoch, TrialStatus
from app.schemas import (
    BestSoFar,
    CurrentTrial,
    EpochRead,
    JobRead,
    Progress,
    TrialDetail,
    TrialRead,
)

FINISHED_TRIALS = [s.value for s in TrialStatus if s.is_finished()]
TrialOrder = Literal["score", "started"]


def _maximize(job: Job) -> bool:
    return job.spec["objective"]["direction"] == "max"


def _score_order(job: Job):  # type: ignore[no-untyped-def]
    return (Trial.score.desc() if _maximize(job) else Trial.score.asc()).nulls_last()


def _scored_first(maximize: bool):  # type: ignore[no-untyped-def]
    # For rows already filtered on `score IS NOT NULL`: no NULLS LAST, so both backends
    # walk the (job_id, score) index instead of sorting every trial of the job.
    return (Trial.score.desc() if maximize else Trial.score.asc(), Trial.trial_id)


def _completed(job_id):  # type: ignore[no-untyped-def]
    return and_(
        Trial.job_id == job_id,
        Trial.status == TrialStatus.COMPLETED,
        Trial.score.is_not(None),
    )


def best_trial(session: Session, job: Job) -> Trial | None:
    return session.scalars(
        select(Trial).where(_completed(job.id)).order_by(*_scored_first(_maximize(job))).limit(1)
    ).first()


def _best_per_job(maximize: bool):  # type: ignore[no-untyped-def]
    inner = aliased(Trial)
    best_id = (
        select(inner.id)
        .where(
            inner.job_id == Job.id,
            inner.status == TrialStatus.COMPLETED,
            inner.score.is_not(None),
        )
        .order_by(inner.score.desc() if maximize else inner.score.asc(), inner.trial_id)
        .limit(1)
        .correlate(Job)
        .scalar_subquery()
    )
    ids = bindparam("ids", expanding=True)
    return select(Trial).join(Job, Trial.id == best_id).where(Job.id.in_(ids))


# Built once: an aliased() entity made per request costs milliseconds of Python (it
# copies every column) and defeats SQLAlchemy's statement cache.
_BEST_PER_JOB = {maximize: _best_per_job(maximize) for maximize in (True, False)}


def _best_trials(session: Session, jobs: list[Job]) -> dict[str, Trial]:
    """Each job's best completed trial, in one statement per objective direction.

    A correlated subquery picks each job's best trial id through the index, inside the
    database: no query per job, and no ranking of every trial of every job.
    """
    best: dict[str, Trial] = {}
    for maximize in (True, False):
        ids = [job.id for job in jobs if _maximize(job) == maximize]
        if not ids:
            continue
        rows = session.scalars(_BEST_PER_JOB[maximize], {"ids": ids}).all()
        best.update({trial.job_id: trial for trial in rows})
    return best


def _progress(session: Session, job_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per job: trials finished, epochs recorded (one grouped query, index-only)."""
    rows = session.execute(
        select(
            Trial.job_id,
            func.count(Trial.id).filter(Trial.status.in_(FINISHED_TRIALS)),
            func.coalesce(func.sum(Trial.epochs_run), 0),
        )
        .where(Trial.job_id.in_(job_ids))
        .group_by(Trial.job_id)
    ).all()
    return {job_id: (int(done), int(epochs)) for job_id, done, epochs in rows}


def _current_trials(session: Session, jobs: list[Job]) -> dict[str, Trial]:
    """The latest-started RUNNING trial of each running job."""
    ids = [job.id for job in jobs if job.status == JobStatus.RUNNING]
    if not ids:
        return {}
    # Sorted here, not in SQL: an ORDER BY started_at could lead the planner to walk the
    # job's trials in start order instead of looking up its few RUNNING ones by status.
    rows = session.scalars(
        select(Trial).where(Trial.job_id.in_(ids), Trial.status == TrialStatus.RUNNING)
    ).all()
    latest: dict[str, Trial] = {}
    for trial in sorted(rows, key=lambda t: (t.started_at, t.trial_id)):
        latest[trial.job_id] = trial
    return latest


def job_reads(session: Session, jobs: list[Job]) -> list[JobRead]:
    """JobRead for each of `jobs` with at most four queries, however many jobs."""
    # A job no worker ever claimed (attempt 0) has no trials: nothing to look up. That is
    # every job answered by POST /jobs, and the queued part of a list.
    ran = [job for job in jobs if not (job.status == JobStatus.QUEUED and job.attempt == 0)]
    progress = _progress(session, [job.id for job in ran]) if ran else {}
    running = _current_trials(session, ran)
    best = _best_trials(session, ran)
    return [
        _job_read(job, progress.get(job.id, (0, 0)), running.get(job.id), best.get(job.id))
        for job in jobs
    ]


def job_read(session: Session, job: Job) -> JobRead:
    return job_reads(session, [job])[0]


def _job_read(
    job: Job, progress: tuple[int, int], running: Trial | None, best: Trial | None
) -> JobRead:
    completed, epochs = progress
    return JobRead(
        id=job.id,
        status=job.status,
        dataset_id=job.dataset_id,
        spec=job.spec,
        search_space=job.search_space,
        progress=Progress(
            trials_completed=completed,
            trials_planned=job.trials_planned,
            current_trial=CurrentTrial(
                trial_id=running.trial_id,
                epochs_run=running.epochs_run,
                hyperparameters=running.hyperparameters,
                started_at=running.started_at,
            )
            if running is not None
            else None,
            epochs_run=epochs,
        ),
        best=BestSoFar(
            trial_id=best.trial_id, score=best.score, hyperparameters=best.hyperparameters
        )
        if best is not None and best.score is not None
        else None,
        error=job.error,
        attempt=job.attempt,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def trial_read(trial: Trial) -> TrialRead:
    return TrialRead.model_validate(trial, from_attributes=True)


def trial_page(
    session: Session, job: Job, *, order: TrialOrder, limit: int, offset: int
) -> tuple[list[TrialRead], int]:
    total = session.scalar(select(func.count(Trial.id)).where(Trial.job_id == job.id)) or 0
    ordering = (
        (_score_order(job), Trial.trial_id)
        if order == "score"
        else (Trial.started_at, Trial.trial_id)
    )
    trials = session.scalars(
        select(Trial).where(Trial.job_id == job.id).order_by(*ordering).limit(limit).offset(offset)
    ).all()
    return [trial_read(t) for t in trials], total


def epoch_rows(session: Session, trial: Trial) -> list[EpochRead]:
    rows = session.scalars(
        select(TrialEpoch).where(TrialEpoch.trial_pk == trial.id).order_by(TrialEpoch.epoch)
    ).all()
    return [_epoch_read(row) for row in rows]


def _epoch_read(row: TrialEpoch) -> EpochRead:
    values: dict[str, Any] = dict(row.metrics)
    values.update(
        epoch=row.epoch, loss=row.loss, val_loss=row.val_loss, learning_rate=row.learning_rate
    )
    return EpochRead.model_validate(values)


def trial_detail(session: Session, trial: Trial) -> TrialDetail:
    return TrialDetail(**trial_read(trial).model_dump(), metrics=epoch_rows(session, trial))


def find_trial(session: Session, job: Job, trial_id: str) -> Trial | None:
    if not storable(trial_id):
        return None
    return session.scalars(
        select(Trial).where(Trial.job_id == job.id, Trial.trial_id == trial_id)
    ).first()
