"""The worker's side of the queue: each call into app.store.queue in a transaction of its own,
with what the worker does while the database is away (heartbeats assume the lease until it
would have expired; outcome writes are retried as long)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.budget import job_start_and_spec
from app.store.claims import Claim, SlotClaim
from app.store.models import Job, JobStatus
from app.store.queue import (
    Heartbeat,
    claim_job,
    finish_job,
    heartbeat,
    lease_holder,
    reap_exhausted,
    requeue_job,
)
from app.store.slot_queue import (
    claim_slot,
    heartbeat_slot,
    release_slot,
    work_waiting,
    yields_to_waiting_job,
)
from app.store.trial_records import completed_trial_count
from app.store.unit_of_work import write_session
from app.store.worker_files import HEARTBEAT_FAILURES, LEASES_LOST, SLOTS_LOST
from tuner_jobs.worker.outcomes import JobAction, JobRecord, SlotRecord, lease_while_away
from tuner_jobs.worker.presence import Presence

logger = logging.getLogger(__name__)


class WorkerDatabase:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        worker_id: str,
        presence: Presence | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        # Where what went wrong is counted, for GET /metrics (app.store.worker_files).
        self.presence = presence

    def count(self, what: str) -> None:
        if self.presence is not None:
            self.presence.count(what)

    def lease_lost(
        self, job_id: str, log: dict[str, object], *, what: str, held_attempt: int
    ) -> None:
        """Say that this worker's lease on a job (or a slot of it, under the chief of
        `held_attempt`) is gone, and who has the job now: the other side of a takeover,
        which would otherwise pass in silence."""
        try:
            with Session(self.engine) as session:
                holder = lease_holder(session=session, job_id=job_id)
        except DBAPIError:
            holder = None
        status, owner, attempt = holder if holder is not None else (None, None, None)
        logger.warning(
            "%s lost: another worker took it over, or the job ended",
            what,
            extra={**log, "job_status": status, "lease_owner": owner, "job_attempt": attempt},
        )
        # Claimed again since (a takeover), or running still without us: counted.
        if (attempt is not None and attempt > held_attempt) or status == JobStatus.RUNNING:
            self.count(SLOTS_LOST if what == "slot lease" else LEASES_LOST)

    def claim(self) -> Claim | SlotClaim | None:
        """A tuner slot of a running parallel job first (finish started work), else a job."""
        with write_session(self.engine) as session:
            reap_exhausted(session=session, max_attempts=self.settings.max_attempts)
            slot = claim_slot(
                session=session, worker_id=self.worker_id, lease_s=self.settings.lease_s
            )
            if slot is not None:
                return slot
            return claim_job(
                session=session,
                worker_id=self.worker_id,
                lease_s=self.settings.lease_s,
                window_s=self.settings.fair_share_window_s,
            )

    def claim_own_slot(self, claim: Claim) -> SlotClaim | None:
        """An open slot of the job this worker is the chief of (None while the database is
        away: the next heartbeat tries again)."""
        try:
            with write_session(self.engine) as session:
                return claim_slot(
                    session=session,
                    worker_id=self.worker_id,
                    lease_s=self.settings.lease_s,
                    job_id=claim.job_id,
                )
        except DBAPIError:
            return None

    def work_waiting(self) -> bool:
        """A read that takes no lock; True also while the database is away (the claim will
        say so, and wait)."""
        try:
            with Session(self.engine) as session:
                return work_waiting(session=session)
        except DBAPIError:
            return True

    def lent_slot_wanted(self, slot: SlotClaim) -> bool:
        """Whether a lent slot goes back to its "auto" job now, a job waiting for this
        worker. False while the database is away: the slot is kept, as a recycle would."""
        try:
            with Session(self.engine) as session:
                return yields_to_waiting_job(session=session, claim=slot)
        except DBAPIError:
            return False

    def still_running(self, job_id: str) -> bool:
        try:
            with Session(self.engine) as session:
                job = session.get(Job, job_id)  # None: deleted since
                return job is not None and job.status == JobStatus.RUNNING
        except DBAPIError:
            return True

    def start_and_spec(self, job_id: str) -> tuple[datetime | None, dict[str, Any]]:
        """The job's first start and stored spec, what its search's deadline is planned from."""
        with Session(self.engine) as session:
            return job_start_and_spec(session=session, job_id=job_id)

    def completed_trials(self, job_id: str) -> int | None:
        """COMPLETED trials of the job (None while the database is away): whether a search
        its time budget stopped found anything."""
        try:
            with Session(self.engine) as session:
                return completed_trial_count(session=session, job_id=job_id)
        except DBAPIError:
            return None

    def heartbeat(self, claim: Claim | SlotClaim) -> Heartbeat:
        with write_session(self.engine) as session:
            if isinstance(claim, SlotClaim):
                return heartbeat_slot(session=session, claim=claim, lease_s=self.settings.lease_s)
            return heartbeat(session=session, claim=claim, lease_s=self.settings.lease_s)

    def lease(self, claim: Claim, log: dict[str, object]) -> JobLease:
        return JobLease(self, claim, log)

    def record_job(self, claim: Claim, record: JobRecord, log: dict[str, object]) -> bool | None:
        """Write the job's outcome: True once written, False when the lease turned out to
        be lost (the write is fenced: another worker owns the job now), None when the
        database stayed away."""
        written = False

        def write(session: Session) -> None:
            nonlocal written
            if record.action is JobAction.REQUEUE:
                written = requeue_job(session=session, claim=claim, reason=record.error)
            elif record.status is not None:
                written = finish_job(
                    session=session,
                    claim=claim,
                    status=record.status,
                    error=record.error,
                    stop_reason=record.stop_reason,
                )

        if record.action is JobAction.LEAVE or not self.write_with_retry(write, log):
            return None
        return written

    def release_slot(self, slot: SlotClaim, record: SlotRecord, log: dict[str, object]) -> None:
        def write(session: Session) -> None:
            release_slot(session=session, claim=slot, status=record.status, error=record.error)

        self.write_with_retry(write, log)

    def write_with_retry(self, write: Callable[[Session], None], log: dict[str, object]) -> bool:
        """Retry while the database is away, up to one lease: after that the job is
        claimable again and another worker resumes it from its project directory. Returns
        whether the write was committed."""
        deadline = time.monotonic() + self.settings.lease_s
        while True:
            try:
                with write_session(self.engine) as session:
                    write(session)
                return True
            except DBAPIError as exc:
                if time.monotonic() > deadline:
                    logger.error("could not record the outcome", extra={**log, "error": str(exc)})
                    return False
                time.sleep(self.settings.poll_s)


class JobLease:
    """A job's lease as its search runs: renewed at each beat; while the database is away it
    stays ours until it would have expired, and past that point the search stops, as
    another worker may own the job."""

    def __init__(self, database: WorkerDatabase, claim: Claim, log: dict[str, object]) -> None:
        self._database = database
        self._claim = claim
        self._log = log
        self.renewed_at = time.monotonic()

    def beat(self) -> Heartbeat:
        try:
            beat = self._database.heartbeat(self._claim)
        except DBAPIError as exc:
            logger.warning("heartbeat failed", extra={**self._log, "error": str(exc.orig)})
            self._database.count(HEARTBEAT_FAILURES)
            return lease_while_away(
                renewed_at=self.renewed_at,
                now=time.monotonic(),
                lease_s=self._database.settings.lease_s,
            )
        self.renewed_at = time.monotonic()
        return beat
