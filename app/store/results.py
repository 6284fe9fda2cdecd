"""Read side of a job's results: progress, best trial, trial pages and curves.

Everything here starts from a Job the caller may see (routes fetch it with
`get_job_or_404(session, id, owner)`), so trials need no ownership check of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Connection, Row, and_, bindparam, func, select
from sqlalchemy.orm import Session

from app.schemas import (
    BestSoFar,
    CurrentTrial,
    EpochRead,
    JobRead,
    Progress,
    TrialDetail,
    TrialRead,
)
from app.store.db import storable
from app.store.models import Job, JobStatus, Trial, TrialEpoch, TrialStatus

FINISHED_TRIALS = [s.value for s in TrialStatus if s.is_finished()]
TrialOrder = Literal["score", "started"]

# The hot reads (a polled job and its trials page, benchmarks/ item 3) are Core
# statements on the tables, built once with bound parameters: the ORM's per-query work
# (building the statement, its cache key, loading entities) was three quarters of
# such a request's CPU. They run on a Connection (one transaction, so one snapshot),
# not through a Session. Their rows answer attribute access like a Job or a Trial.
JOBS = Job.__table__
TRIALS = Trial.__table__
JobRow = Job | Row[Any]

_IDS = bindparam("ids", expanding=True)
_JOB_ID = bindparam("job_id")

_JOB = select(JOBS).where(JOBS.c.id == _JOB_ID)
_JOB_OF_OWNER = _JOB.where(JOBS.c.owner == bindparam("owner"))

# Per job: trials finished, epochs recorded (one grouped query, index-only).
_PROGRESS = (
    select(
        TRIALS.c.job_id,
        func.count(TRIALS.c.id).filter(TRIALS.c.status.in_(FINISHED_TRIALS)),
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
    TRIALS.c.hyperparameters,
    TRIALS.c.started_at,
).where(TRIALS.c.job_id.in_(_IDS), TRIALS.c.status == TrialStatus.RUNNING)


def _best_per_job(maximize: bool):  # type: ignore[no-untyped-def]
    """Each job's best completed trial: a correlated subquery picks its id through the
    (job_id, score) index, inside the database; no query per job, and no ranking of
    every trial of every job."""
    inner = TRIALS.alias("inner")
    score = inner.c.score.desc() if maximize else inner.c.score.asc()
    best_id = (
        select(inner.c.id)
        .where(
            inner.c.job_id == JOBS.c.id,
            inner.c.status == TrialStatus.COMPLETED,
            inner.c.score.is_not(None),
        )
        .order_by(score, inner.c.trial_id)
        .limit(1)
        .correlate(JOBS)
        .scalar_subquery()
    )
    return (
        select(TRIALS.c.job_id, TRIALS.c.trial_id, TRIALS.c.score, TRIALS.c.hyperparameters)
        .select_from(TRIALS)
        .join(JOBS, TRIALS.c.id == best_id)
        .where(JOBS.c.id.in_(_IDS))
    )


_BEST_PER_JOB = {maximize: _best_per_job(maximize) for maximize in (True, False)}


def _maximize(job: JobRow) -> bool:
    return bool(job.spec["objective"]["direction"] == "max")


_TRIAL_PAGE = {
    order: select(TRIALS)
    .where(TRIALS.c.job_id == _JOB_ID)
    .order_by(*ordering)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
    for order, ordering in {
        ("started", None): (TRIALS.c.started_at, TRIALS.c.trial_id),
        ("score", True): (TRIALS.c.score.desc().nulls_last(), TRIALS.c.trial_id),
        ("score", False): (TRIALS.c.score.asc().nulls_last(), TRIALS.c.trial_id),
    }.items()
}
_TRIAL_COUNT = select(func.count(TRIALS.c.id)).where(TRIALS.c.job_id == _JOB_ID)


def find_job(db: Connection, job_id: str, owner: str | None) -> Row[Any] | None:
    """The job's row (Core, not the ORM) if the caller may see it: another key's job is
    as good as absent."""
    if not storable(job_id):
        return None
    if owner is None:
        return db.execute(_JOB, {"job_id": job_id}).first()
    return db.execute(_JOB_OF_OWNER, {"job_id": job_id, "owner": owner}).first()


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


def best_trial(session: Session, job: JobRow) -> Trial | None:
    return session.scalars(
        select(Trial).where(_completed(job.id)).order_by(*_scored_first(_maximize(job))).limit(1)
    ).first()


def _best_trials(db: Connection, jobs: list[JobRow]) -> dict[str, Row[Any]]:
    """Each job's best completed trial, in one statement per objective direction."""
    best: dict[str, Row[Any]] = {}
    for maximize in (True, False):
        ids = [job.id for job in jobs if _maximize(job) == maximize]
        if ids:
            rows = db.execute(_BEST_PER_JOB[maximize], {"ids": ids})
            best.update({row.job_id: row for row in rows})
    return best


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


def job_reads(db: Connection, jobs: Sequence[JobRow]) -> list[JobRead]:
    """JobRead for each of `jobs` (ORM objects or rows) with at most four queries, however
    many jobs."""
    # A job no worker ever claimed (attempt 0) has no trials: nothing to look up. That is
    # every job answered by POST /jobs, and the queued part of a list.
    ran = [job for job in jobs if not (job.status == JobStatus.QUEUED and job.attempt == 0)]
    progress = _progress(db, [job.id for job in ran]) if ran else {}
    running = _current_trials(db, ran)
    best = _best_trials(db, ran)
    return [
        _job_read(job, progress.get(job.id, (0, 0)), running.get(job.id), best.get(job.id))
        for job in jobs
    ]


def _job_read(
    job: JobRow, progress: tuple[int, int], running: Row[Any] | None, best: Row[Any] | None
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
    db: Connection, job: JobRow, *, order: TrialOrder, limit: int, offset: int
) -> tuple[list[TrialRead], int]:
    total = db.scalar(_TRIAL_COUNT, {"job_id": job.id}) or 0
    statement = _TRIAL_PAGE[(order, _maximize(job) if order == "score" else None)]
    trials = db.execute(statement, {"job_id": job.id, "limit": limit, "offset": offset})
    # From a dict, not the row's attributes: a third less of pydantic's time per trial.
    return [TrialRead.model_validate(t._asdict()) for t in trials], total


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


def find_trial(session: Session, job: JobRow, trial_id: str) -> Trial | None:
    if not storable(trial_id):
        return None
    return session.scalars(
        select(Trial).where(Trial.job_id == job.id, Trial.trial_id == trial_id)
    ).first()
