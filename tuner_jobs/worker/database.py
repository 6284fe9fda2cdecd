"""The worker's side of the queue: each call into app.store.queue in a transaction of its own,
with what the worker does while the database is away (heartbeats assume the lease until it
would have expired; outcome writes are retried as long)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.db import write_session
from app.store.models import Job, JobStatus
from app.store.queue import (
    Claim,
    Heartbeat,
    SlotClaim,
    claim_job,
    finish_job,
    heartbeat,
    reap_exhausted,
    requeue_job,
)
from app.store.slot_queue import claim_slot, heartbeat_slot, release_slot, work_waiting
from tuner_jobs.worker.outcomes import JobAction, JobRecord, SlotRecord, lease_while_away

logger = logging.getLogger(__name__)


class WorkerDatabase:
    def __init__(self, engine: Engine, settings: Settings, worker_id: str) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id

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
                session=session, worker_id=self.worker_id, lease_s=self.settings.lease_s
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

    def still_running(self, job_id: str) -> bool:
        try:
            with Session(self.engine) as session:
                job = session.get(Job, job_id)  # None: deleted since
                return job is not None and job.status == JobStatus.RUNNING
        except DBAPIError:
            return True

    def heartbeat(self, claim: Claim | SlotClaim) -> Heartbeat:
        with write_session(self.engine) as session:
            if isinstance(claim, SlotClaim):
                return heartbeat_slot(session=session, claim=claim, lease_s=self.settings.lease_s)
            return heartbeat(session=session, claim=claim, lease_s=self.settings.lease_s)

    def lease(self, claim: Claim, log: dict[str, object]) -> JobLease:
        return JobLease(self, claim, log)

    def record_job(self, claim: Claim, record: JobRecord, log: dict[str, object]) -> None:
        def write(session: Session) -> None:
            if record.action is JobAction.REQUEUE:
                requeue_job(session=session, claim=claim, reason=record.error)
            elif record.status is not None:
                finish_job(
                    session=session,
                    claim=claim,
                    status=record.status,
                    error=record.error,
                    stop_reason=record.stop_reason,
                )

        if record.action is not JobAction.LEAVE:
            self.write_with_retry(write, log)

    def release_slot(self, slot: SlotClaim, record: SlotRecord, log: dict[str, object]) -> None:
        def write(session: Session) -> None:
            release_slot(session=session, claim=slot, status=record.status, error=record.error)

        self.write_with_retry(write, log)

    def write_with_retry(self, write: Callable[[Session], None], log: dict[str, object]) -> None:
        """Retry while the database is away, up to one lease: after that the job is
        claimable again and another worker resumes it from its project directory."""
        deadline = time.monotonic() + self.settings.lease_s
        while True:
            try:
                with write_session(self.engine) as session:
                    write(session)
                return
            except DBAPIError as exc:
                if time.monotonic() > deadline:
                    logger.error("could not record the outcome", extra={**log, "error": str(exc)})
                    return
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
            return lease_while_away(
                renewed_at=self.renewed_at,
                now=time.monotonic(),
                lease_s=self._database.settings.lease_s,
            )
        self.renewed_at = time.monotonic()
        return beat
