"""Read side of a job's results: progress, best trial, trial pages and curves.

Everything here starts from a Job the caller may see (routes fetch it with
`get_job_or_404(session, id, owner)`), so trials need no ownership check of their own.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


def _score_order(job: Job):  # type: ignore[no-untyped-def]
    maximize = job.spec["objective"]["direction"] == "max"
    return (Trial.score.desc() if maximize else Trial.score.asc()).nulls_last()


def best_trial(session: Session, job: Job) -> Trial | None:
    return session.scalars(
        select(Trial)
        .where(
            Trial.job_id == job.id,
            Trial.status == TrialStatus.COMPLETED,
            Trial.score.is_not(None),
        )
        .order_by(_score_order(job), Trial.trial_id)
        .limit(1)
    ).first()


def job_read(session: Session, job: Job) -> JobRead:
    completed, epochs = session.execute(
        select(
            func.count(Trial.id).filter(Trial.status.in_(FINISHED_TRIALS)),
            func.coalesce(func.sum(Trial.epochs_run), 0),
        ).where(Trial.job_id == job.id)
    ).one()
    running = session.scalars(
        select(Trial)
        .where(Trial.job_id == job.id, Trial.status == TrialStatus.RUNNING)
        .order_by(Trial.started_at.desc())
        .limit(1)
    ).first()
    best = best_trial(session, job)
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
            if running is not None and job.status == JobStatus.RUNNING
            else None,
            epochs_run=int(epochs),
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
