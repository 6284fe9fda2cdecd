"""Queue SQL for the slots of parallel jobs: open, claim, heartbeat, release, close.

A parallel job's chief (run by the worker that claimed the job) opens one slot per
tuner. Any worker, on any machine, may claim an open slot, or one whose lease
expired, and run a KerasTuner worker against the chief. A slot only counts while
its job is running under the chief that opened it (job.attempt == chief_attempt).

A job's slots wait for workers in one of two ways, by its spec's `parallel_trials`:
a number N (N - 1 slots) is a share the job was promised, so its slots are claimed before
any queued job; "auto" (app.search.spec.AUTO_MAX_TUNERS - 1 slots) is what idle workers may
lend it: a worker takes such a slot only while no job waits, and a tuner on one hands it
back between trials once a job does (`yields_to_waiting_job`), so every job keeps a worker.

The same rules as app.store.queue: the session is a keyword argument, nothing here
commits, and worker-side writes are fenced on the claim.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.store.claims import Claim, SlotClaim
from app.store.models import Job, JobSlot, JobStatus, SlotStatus, utcnow
from app.store.queue import Heartbeat, claimable, holds_lease


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


def _auto(job: Any = Job):  # type: ignore[no-untyped-def]
    """The job's parallel_trials is "auto" (a spec without the field loads as "auto" too)."""
    return func.coalesce(job.spec["parallel_trials"].as_string(), "auto") == "auto"


def _job_waiting(now: datetime):  # type: ignore[no-untyped-def]
    waiting = aliased(Job)
    return exists().where(claimable(now, waiting))


def _slot_claimable(now: datetime, *, lent: bool = True):  # type: ignore[no-untyped-def]
    """A slot a worker may take now. `lent`: an "auto" job's slots only while no job waits
    (False for its chief's own worker, which finishes its own job's trials first)."""
    condition = and_(_live_chief(now), Job.cancel_requested.is_(False), _unattended(now))
    if lent:
        condition = and_(condition, or_(not_(_auto()), not_(_job_waiting(now))))
    return condition


def work_waiting(*, session: Session, now: datetime | None = None) -> bool:
    """Whether claim_slot or claim_job would find something, read without a lock.

    Idle workers ask this a few times a second and claim (a write transaction: on
    SQLite, the database's write lock) only when it says yes, so a new job, or a slot
    a chief just opened, is taken within a fraction of a second.
    """
    now = now or utcnow()
    slot = select(JobSlot.id).join(Job, Job.id == JobSlot.job_id).where(_slot_claimable(now))
    job = select(Job.id).where(claimable(now))
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
    """Lease an open slot (or one whose worker stopped heartbeating): a numbered job's
    first, then an "auto" job's while no job waits; oldest job first. With `job_id`, a
    slot of that job only, waiting jobs or not (its chief's worker takes over a dead
    tuner's trial)."""
    now = now or utcnow()
    query = (
        select(JobSlot.id, JobSlot.status, JobSlot.lease_owner)
        .join(Job, Job.id == JobSlot.job_id)
        .where(_slot_claimable(now, lent=job_id is None))
        # Promised shares (a number) before lent ones ("auto"), then the oldest job.
        .order_by(_auto(), Job.created_at, JobSlot.slot)
        .limit(1)
        .with_for_update(skip_locked=True, of=JobSlot)
    )
    if job_id is not None:
        query = query.where(JobSlot.job_id == job_id)
    candidate = session.execute(query).one_or_none()
    if candidate is None:
        return None
    # A RUNNING slot is claimable only once its tuner's worker stopped heartbeating.
    taken_over_from = candidate.lease_owner if candidate.status == SlotStatus.RUNNING else None
    row = session.execute(
        update(JobSlot)
        .where(
            JobSlot.id == candidate.id,
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
        taken_over_from=taken_over_from,
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


def yields_to_waiting_job(
    *, session: Session, claim: SlotClaim, now: datetime | None = None
) -> bool:
    """Whether the tuner on this slot should hand it back now, between trials: its job is
    "auto" (the slot is lent, not promised), another job waits for a worker, and this is
    not the chief's own worker (which would only take the slot back: its own job's)."""
    now = now or utcnow()
    lent = select(Job.id).where(
        Job.id == claim.job_id,
        Job.lease_owner.is_distinct_from(claim.worker_id),
        _auto(),
        _job_waiting(now),
    )
    return session.execute(lent).first() is not None


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


def slots_running(*, session: Session, job_id: str) -> int:
    """Slots of the job a tuner process holds now (the chief's own tuner0 is not one)."""
    return int(
        session.scalar(
            select(func.count(JobSlot.id)).where(
                JobSlot.job_id == job_id, JobSlot.status == SlotStatus.RUNNING
            )
        )
        or 0
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
