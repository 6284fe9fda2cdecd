"""Every piece of queue SQL: claim, heartbeat, finish, requeue, cancel.

Functions take the session as a keyword argument and never commit: the caller's
transaction does. Worker-side writes are fenced on (lease_owner, attempt), so a
worker that lost its lease (it stalled, another worker took over) changes nothing.

On PostgreSQL the claim is SELECT ... FOR UPDATE SKIP LOCKED followed by a guarded
UPDATE; on SQLite the caller opens the transaction with BEGIN IMMEDIATE
(`app.store.db.write_session`), which serializes claims outright.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.store.models import Job, JobSlot, JobStatus, SlotStatus, Trial, TrialStatus, utcnow


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    worker_id: str


@dataclass(frozen=True)
class SlotClaim:
    """A lease on one tuner slot of a parallel job (see app.store.models.JobSlot)."""

    job_id: str
    slot: int
    attempt: int
    worker_id: str
    chief_attempt: int
    chief_address: str

    @property
    def tuner_id(self) -> str:
        return f"tuner{self.slot}"


@dataclass(frozen=True)
class Heartbeat:
    held: bool
    cancel_requested: bool = False


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    # Queued jobs, and running jobs whose worker stopped heartbeating (they resume).
    return or_(
        Job.status == JobStatus.QUEUED,
        and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
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


def _running_by_owner(now: datetime):  # type: ignore[no-untyped-def]
    """Jobs each owner has running under a live lease (an expired one is claimable again)."""
    return (
        select(Job.owner.label("owner"), func.count().label("running"))
        .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at >= now)
        .group_by(Job.owner)
        .subquery("running_by_owner")
    )


def claim_job(
    *, session: Session, worker_id: str, lease_s: float, now: datetime | None = None
) -> Claim | None:
    """Lease a claimable job to `worker_id`; None when the queue is empty.

    Fair share between owners (API keys): the oldest job of the owner with the fewest jobs
    running, so one key's long queue cannot hold another key's job back indefinitely.
    """
    now = now or utcnow()
    running = _running_by_owner(now)
    candidate = session.execute(
        select(Job.id)
        .outerjoin(running, running.c.owner.is_not_distinct_from(Job.owner))
        .where(_claimable(now))
        .order_by(func.coalesce(running.c.running, 0), Job.created_at, Job.id)
        .limit(1)
        # OF jobs: the aggregate beside it is read, not locked (PostgreSQL refuses to lock
        # grouped rows).
        .with_for_update(skip_locked=True, of=Job)
    ).scalar_one_or_none()
    if candidate is None:
        return None
    row = session.execute(
        update(Job)
        # Re-check the condition: on PostgreSQL another transaction may have won
        # the row between our SELECT and UPDATE if it was not locked.
        .where(Job.id == candidate, _claimable(now))
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
    return Claim(job_id=row.id, attempt=row.attempt, worker_id=worker_id)


def heartbeat(
    *, session: Session, claim: Claim, lease_s: float, now: datetime | None = None
) -> Heartbeat:
    """Extend the lease; reports whether it is still ours and whether cancel was asked."""
    now = now or utcnow()
    row = session.execute(
        update(Job)
        .where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
        .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
        .returning(Job.cancel_requested)
    ).one_or_none()
    if row is None:
        return Heartbeat(held=False)
    return Heartbeat(held=True, cancel_requested=bool(row.cancel_requested))


def holds_lease(*, session: Session, claim: Claim) -> bool:
    return (
        session.execute(
            select(Job.id).where(_fenced(claim.job_id, claim.worker_id, claim.attempt))
        ).first()
        is not None
    )


class JobEnd(enum.StrEnum):
    """Why a finished job ended (jobs.stop_reason), written with its final status."""

    COMPLETED = "completed"  # the oracle ran out of trials
    TIME_BUDGET = "time_budget"  # max_runtime_s ran out after at least one trial completed
    CANCELLED = "cancelled"
    FAILED = "failed"


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


# --- Slots of parallel jobs ------------------------------------------------------------
#
# A parallel job's chief (run by the worker that claimed the job) opens one slot per
# tuner. Any worker, on any machine, may claim an open slot, or one whose lease
# expired, and run a KerasTuner worker against the chief. A slot only counts while
# its job is running under the chief that opened it (job.attempt == chief_attempt).


def _live_chief(now: datetime):  # type: ignore[no-untyped-def]
    return and_(
        Job.id == JobSlot.job_id,
        Job.status == JobStatus.RUNNING,
        Job.attempt == JobSlot.chief_attempt,
        Job.chief_address.is_not(None),
        Job.lease_expires_at >= now,  # else its worker died: the chief is gone with it
    )


def _unattended(now: datetime):  # type: ignore[no-untyped-def]
    """A slot nobody runs: never claimed, handed back, or its worker stopped heartbeating."""
    return or_(
        JobSlot.status == SlotStatus.OPEN,
        and_(JobSlot.status == SlotStatus.RUNNING, JobSlot.lease_expires_at < now),
    )


def _slot_claimable(now: datetime):  # type: ignore[no-untyped-def]
    return and_(_live_chief(now), Job.cancel_requested.is_(False), _unattended(now))


def work_waiting(*, session: Session, now: datetime | None = None) -> bool:
    """Whether claim_slot or claim_job would find something, read without a lock.

    Idle workers ask this a few times a second and claim (a write transaction: on
    SQLite, the database's write lock) only when it says yes, so a new job, or a slot
    a chief just opened, is taken within a fraction of a second.
    """
    now = now or utcnow()
    slot = select(JobSlot.id).join(Job, Job.id == JobSlot.job_id).where(_slot_claimable(now))
    job = select(Job.id).where(_claimable(now))
    return any(session.execute(query.limit(1)).first() is not None for query in (slot, job))


def open_slots(*, session: Session, claim: Claim, tuners: int, address: str) -> bool:
    """The chief is serving at `address`: replace the job's slots with open ones for a
    search of `tuners` tuners. The chief runs tuner0 itself; slots 1 .. tuners-1 are
    for other processes, on this worker or any other."""
    if not holds_lease(session=session, claim=claim):
        return False
    session.execute(delete(JobSlot).where(JobSlot.job_id == claim.job_id))
    session.add_all(
        JobSlot(
            job_id=claim.job_id,
            slot=slot,
            chief_attempt=claim.attempt,
            status=SlotStatus.OPEN,
            attempt=0,
        )
        for slot in range(1, tuners)
    )
    session.execute(update(Job).where(Job.id == claim.job_id).values(chief_address=address))
    return True


def claim_slot(
    *,
    session: Session,
    worker_id: str,
    lease_s: float,
    job_id: str | None = None,
    now: datetime | None = None,
) -> SlotClaim | None:
    """Lease an open slot (or one whose worker stopped heartbeating), oldest job first."""
    now = now or utcnow()
    query = (
        select(JobSlot.id)
        .join(Job, Job.id == JobSlot.job_id)
        .where(_slot_claimable(now))
        .order_by(Job.created_at, JobSlot.slot)
        .limit(1)
        .with_for_update(skip_locked=True, of=JobSlot)
    )
    if job_id is not None:
        query = query.where(JobSlot.job_id == job_id)
    candidate = session.execute(query).scalar_one_or_none()
    if candidate is None:
        return None
    row = session.execute(
        update(JobSlot)
        .where(
            JobSlot.id == candidate,
            _unattended(now),
        )
        .values(
            status=SlotStatus.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            heartbeat_at=now,
            attempt=JobSlot.attempt + 1,
        )
        .returning(JobSlot.job_id, JobSlot.slot, JobSlot.attempt, JobSlot.chief_attempt)
    ).one_or_none()
    if row is None:
        return None
    address = session.execute(select(Job.chief_address).where(Job.id == row.job_id)).scalar_one()
    return SlotClaim(
        job_id=row.job_id,
        slot=row.slot,
        attempt=row.attempt,
        worker_id=worker_id,
        chief_attempt=row.chief_attempt,
        chief_address=address,
    )


def _slot_fenced(claim: SlotClaim):  # type: ignore[no-untyped-def]
    return and_(
        JobSlot.job_id == claim.job_id,
        JobSlot.slot == claim.slot,
        JobSlot.status == SlotStatus.RUNNING,
        JobSlot.lease_owner == claim.worker_id,
        JobSlot.attempt == claim.attempt,
        JobSlot.chief_attempt == claim.chief_attempt,
    )


def heartbeat_slot(
    *, session: Session, claim: SlotClaim, lease_s: float, now: datetime | None = None
) -> Heartbeat:
    """Extend a slot's lease. `held` is False once the slot or its chief is gone (the job
    finished, was requeued, or its chief restarted): the tuner must stop at once, as its
    chief will never answer again. A cancel request stops it at the next epoch."""
    now = now or utcnow()
    alive = session.execute(
        select(Job.cancel_requested).where(
            Job.id == claim.job_id,
            Job.status == JobStatus.RUNNING,
            Job.attempt == claim.chief_attempt,
            Job.lease_expires_at >= now,
        )
    ).one_or_none()
    if alive is None:
        return Heartbeat(held=False)
    extended = session.execute(
        update(JobSlot)
        .where(_slot_fenced(claim))
        .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
    ).rowcount
    return Heartbeat(held=bool(extended), cancel_requested=bool(alive.cancel_requested))


def release_slot(
    *, session: Session, claim: SlotClaim, status: SlotStatus, error: str | None = None
) -> bool:
    """End a lease on a slot: DONE (its tuner finished), OPEN (someone else may take it
    over and rerun its interrupted trial) or FAILED."""
    result = session.execute(
        update(JobSlot)
        .where(_slot_fenced(claim))
        .values(status=status, lease_owner=None, lease_expires_at=None, error=error)
    )
    return bool(result.rowcount)


def job_slots(*, session: Session, job_id: str, chief_attempt: int) -> list[JobSlot]:
    return list(
        session.scalars(
            select(JobSlot)
            .where(JobSlot.job_id == job_id, JobSlot.chief_attempt == chief_attempt)
            .order_by(JobSlot.slot)
        )
    )


def close_slots(
    *, session: Session, claim: Claim, slots: list[int], now: datetime | None = None
) -> None:
    """The chief marks unattended slots DONE once it no longer needs their tuners (the
    oracle has no trial left for them); live ones get the oracle's STOPPED themselves."""
    now = now or utcnow()
    if slots and holds_lease(session=session, claim=claim):
        session.execute(
            update(JobSlot)
            .where(
                JobSlot.job_id == claim.job_id,
                JobSlot.chief_attempt == claim.attempt,
                JobSlot.slot.in_(slots),
                _unattended(now),
            )
            .values(status=SlotStatus.DONE)
        )


def holds(*, session: Session, claim: Claim | SlotClaim) -> bool:
    """Whether a search process may still write for this claim (the recorder's fence)."""
    if isinstance(claim, SlotClaim):
        return (
            session.execute(
                select(JobSlot.id)
                .join(Job, Job.id == JobSlot.job_id)
                .where(_slot_fenced(claim), Job.status == JobStatus.RUNNING)
                .where(Job.attempt == claim.chief_attempt)
            ).first()
            is not None
        )
    return holds_lease(session=session, claim=claim)
