"""Every piece of queue SQL: claim, heartbeat, finish, requeue, cancel.

Functions take the session as a keyword argument and never commit: the caller's
transaction does. Worker-side writes are fenced on (lease_owner, attempt), so a
worker that lost its lease (it stalled, another worker took over) changes nothing.

On PostgreSQL the claim is SELECT ... FOR UPDATE SKIP LOCKED followed by a guarded
UPDATE; on SQLite the caller opens the transaction with BEGIN IMMEDIATE
(`app.store.db.write_session`), which serializes claims outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from app.store.budget import BUDGET_S, END_PHASE_S, search_ends_at
from app.store.claims import Claim
from app.store.models import Job, Trial, utcnow
from app.store.statuses import JobEnd, JobStatus, TrialStatus


@dataclass(frozen=True)
class Heartbeat:
    held: bool
    cancel_requested: bool = False
    # Read from the job's row at each beat (app.store.budget): a budget changed while the
    # job runs is obeyed. `budget_read` False: not read (the database was away).
    budget_read: bool = False
    search_ends_at: datetime | None = None


def claimable(now: datetime, job: Any = Job):  # type: ignore[no-untyped-def]
    # Queued jobs, and running jobs whose worker stopped heartbeating (they resume).
    # `job`: Job, or an alias of it (app.store.slot_queue asks whether any job waits).
    return or_(
        job.status == JobStatus.QUEUED,
        and_(job.status == JobStatus.RUNNING, job.lease_expires_at < now),
    )


def _fenced(job_id: str, worker_id: str, attempt: int):  # type: ignore[no-untyped-def]
    return and_(
        Job.id == job_id,
        Job.status == JobStatus.RUNNING,
        Job.lease_owner == worker_id,
        Job.attempt == attempt,
    )


def reap_exhausted(*, session: Session, max_attempts: int, now: datetime | None = None) -> int:
    """Fail expired jobs that already used every attempt; cancel expired ones asked to stop."""
    now = now or utcnow()
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    cancelled = session.execute(
        update(Job)
        .where(expired, Job.cancel_requested.is_(True))
        .values(
            status=JobStatus.CANCELLED,
            stop_reason=JobEnd.CANCELLED,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
        )
    ).rowcount
    failed = session.execute(
        update(Job)
        .where(expired, Job.attempt >= max_attempts)
        .values(
            status=JobStatus.FAILED,
            stop_reason=JobEnd.FAILED,
            error=f"the worker running this job stopped {max_attempts} time(s); giving up",
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
        )
    ).rowcount
    return (cancelled or 0) + (failed or 0)


# How far back claim_job looks at what each owner has run, by default (TUNER_FAIR_SHARE_WINDOW_S).
FAIR_SHARE_WINDOW_S = 3600.0


def _usage_by_owner(now: datetime, window_s: float):  # type: ignore[no-untyped-def]
    """Per owner: jobs running under a live lease (an expired one is claimable again), and
    jobs run, running or finished, among those submitted within the window (bounded by
    created_at, which is indexed; a job submitted earlier counts while it runs)."""
    live = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at >= now)
    return (
        select(
            Job.owner.label("owner"),
            func.sum(case((live, 1), else_=0)).label("running"),
            func.count().label("recent"),
        )
        .where(
            Job.started_at.is_not(None),
            or_(
                Job.status == JobStatus.RUNNING,
                Job.created_at >= now - timedelta(seconds=window_s),
            ),
        )
        .group_by(Job.owner)
        .subquery("usage_by_owner")
    )


def claim_job(
    *,
    session: Session,
    worker_id: str,
    lease_s: float,
    now: datetime | None = None,
    window_s: float = FAIR_SHARE_WINDOW_S,
) -> Claim | None:
    """Lease a claimable job to `worker_id`; None when the queue is empty.

    Fair share between owners (API keys): the oldest job of the owner with the fewest jobs
    running, then of the one that has run the fewest recently (`window_s`). The second
    matters whenever a worker frees up with nothing else running, as one worker always
    does: by running counts alone every owner ties at zero and the oldest job wins, so a
    key that queued one job behind another key's four waited for all four.
    """
    now = now or utcnow()
    usage = _usage_by_owner(now, window_s)
    candidate = session.execute(
        select(Job.id, Job.status, Job.lease_owner)
        .outerjoin(usage, usage.c.owner.is_not_distinct_from(Job.owner))
        .where(claimable(now))
        .order_by(
            func.coalesce(usage.c.running, 0),
            func.coalesce(usage.c.recent, 0),
            Job.created_at,
            Job.id,
        )
        .limit(1)
        # OF jobs: the aggregate beside it is read, not locked (PostgreSQL refuses to lock
        # grouped rows).
        .with_for_update(skip_locked=True, of=Job)
    ).one_or_none()
    if candidate is None:
        return None
    # A running job is claimable only once its worker stopped heartbeating: a takeover.
    taken_over_from = candidate.lease_owner if candidate.status == JobStatus.RUNNING else None
    row = session.execute(
        update(Job)
        # Re-check the condition: on PostgreSQL another transaction may have won
        # the row between our SELECT and UPDATE if it was not locked.
        .where(Job.id == candidate.id, claimable(now))
        .values(
            status=JobStatus.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            heartbeat_at=now,
            attempt=Job.attempt + 1,
            started_at=func.coalesce(Job.started_at, now),
            error=None,
        )
        .returning(Job.id, Job.attempt)
    ).one_or_none()
    if row is None:
        return None
    return Claim(
        job_id=row.id, attempt=row.attempt, worker_id=worker_id, taken_over_from=taken_over_from
    )


def heartbeat(
    *, session: Session, claim: Claim, lease_s: float, now: datetime | None = None
) -> Heartbeat:
    """Extend the lease; reports whether it is still ours and whether cancel was asked."""
    now = now or utcnow()
    row = session.execute(
        update(Job)
        .where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
        .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
        .returning(Job.cancel_requested, Job.started_at, BUDGET_S, END_PHASE_S)
    ).one_or_none()
    if row is None:
        return Heartbeat(held=False)
    return Heartbeat(
        held=True,
        cancel_requested=bool(row[0]),
        budget_read=True,
        search_ends_at=search_ends_at(*row[1:]),
    )


def lease_holder(*, session: Session, job_id: str) -> tuple[str, str | None, int] | None:
    """The job's status, lease owner and attempt now (what a worker that lost the lease
    logs); None when it was deleted."""
    row = session.execute(
        select(Job.status, Job.lease_owner, Job.attempt).where(Job.id == job_id)
    ).one_or_none()
    return None if row is None else (row.status, row.lease_owner, row.attempt)


def lease_expiry(*, session: Session, claim: Claim) -> datetime | None:
    """When the claim's lease runs out, as the job's row says now; None once the lease is
    no longer the claim's (taken over, or the job ended). A parallel job's chief reads it to
    stop serving its oracle on its own clock (tuner_jobs.search.chief)."""
    return session.scalar(
        select(Job.lease_expires_at).where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
    )


def holds_lease(*, session: Session, claim: Claim) -> bool:
    return (
        session.execute(
            select(Job.id).where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
        ).first()
        is not None
    )


# A caller that names no reason (a plain success, cancel or failure): the status says it.
_END_OF_STATUS = {
    JobStatus.SUCCEEDED: JobEnd.COMPLETED,
    JobStatus.CANCELLED: JobEnd.CANCELLED,
    JobStatus.FAILED: JobEnd.FAILED,
}


def finish_job(
    *,
    session: Session,
    claim: Claim,
    status: JobStatus,
    error: str | None = None,
    stop_reason: JobEnd | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the outcome; False when the lease was lost (someone else owns the job now)."""
    assert status.is_finished()
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
        .values(
            status=status,
            error=error,
            stop_reason=stop_reason or _END_OF_STATUS[status],
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            chief_address=None,
        )
    )
    if result.rowcount:
        # A finished job runs nothing: a trial a tuner on another machine was still on
        # when the job was cancelled or failed ends STOPPED, not RUNNING forever.
        session.execute(
            update(Trial)
            .where(Trial.job_id == claim.job_id, Trial.status == TrialStatus.RUNNING)
            .values(status=TrialStatus.STOPPED, message="the job ended during this trial")
        )
    return bool(result.rowcount)


def requeue_job(*, session: Session, claim: Claim, reason: str | None = None) -> bool:
    """Hand the job back to the queue (graceful shutdown, a crashed child with attempts left)."""
    result = session.execute(
        update(Job)
        .where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
        .values(
            status=JobStatus.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            error=reason,
            chief_address=None,
        )
    )
    return bool(result.rowcount)


def request_cancel(
    *, session: Session, job_id: str, now: datetime | None = None
) -> JobStatus | None:
    """Cancel a queued job at once, flag a running one.

    Returns the status after the call, or None when the job had already finished.
    """
    now = now or utcnow()
    queued = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.CANCELLED,
            cancel_requested=True,
            stop_reason=JobEnd.CANCELLED,
            finished_at=now,
        )
    ).rowcount
    if queued:
        return JobStatus.CANCELLED
    running = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
    ).rowcount
    return JobStatus.RUNNING if running else None
