"""The worker supervisor: claim a job, run its search in a spawned child, keep the lease.

The supervisor never imports TensorFlow, so it can always spawn a clean child and
survive whatever happens in it (a crash, an out-of-memory kill).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db import make_engine, write_session
from app.models import Job, JobStatus, utcnow
from app.queue import (
    Claim,
    Heartbeat,
    claim_job,
    finish_job,
    heartbeat,
    reap_exhausted,
    requeue_job,
)
from app.settings import Settings
from tuner_jobs.child import FAILED, LEASE_LOST, RECYCLE, STOPPED, SUCCEEDED, run_child

logger = logging.getLogger(__name__)

# After asking a child to stop, how long it gets to reach an epoch boundary.
STOP_GRACE_S = 60.0

StopReason = Literal["lease_lost", "cancel", "timeout", "shutdown"]


def _read_report(receive: Connection) -> tuple[str | None, str | None]:
    """The child's last word, or (None, None) when it died before saying anything."""
    try:
        return receive.recv() if receive.poll() else (None, None)
    except (EOFError, OSError):
        return None, None
    finally:
        receive.close()


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, settings: Settings, *, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.engine: Engine = make_engine(
            settings.database_url,
            application_name="worker",
            busy_timeout_s=settings.sqlite_busy_timeout_s,
        )
        self.shutdown = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    def install_signal_handlers(self) -> None:
        def _graceful(signum: int, _frame: object) -> None:
            logger.info("shutting down after the current epoch", extra={"signal": signum})
            self.shutdown.set()

        signal.signal(signal.SIGTERM, _graceful)
        signal.signal(signal.SIGINT, _graceful)

    def run(self, *, max_jobs: int | None = None) -> None:
        logger.info("worker started", extra={"worker_id": self.worker_id})
        done = 0
        while not self.shutdown.is_set() and (max_jobs is None or done < max_jobs):
            try:
                claim = self.claim()
            except DBAPIError as exc:  # the database is away: wait for it, keep no state
                logger.warning("cannot reach the database", extra={"error": str(exc.orig)})
                claim = None
            if claim is None:
                self.shutdown.wait(self.settings.poll_s)
                continue
            self.execute(claim)
            done += 1
        self.engine.dispose()

    def claim(self) -> Claim | None:
        with write_session(self.engine) as session:
            reap_exhausted(session=session, max_attempts=self.settings.max_attempts)
            return claim_job(
                session=session, worker_id=self.worker_id, lease_s=self.settings.lease_s
            )

    def _write_with_retry(self, write: Callable[[Session], None], log: dict[str, object]) -> None:
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

    def _heartbeat(self, claim: Claim) -> Heartbeat:
        with write_session(self.engine) as session:
            return heartbeat(session=session, claim=claim, lease_s=self.settings.lease_s)

    def _deadline(self, claim: Claim) -> float | None:
        """The job's max_runtime_s as a time.monotonic() deadline, counted from its first start."""
        with Session(self.engine) as session:
            job = session.get_one(Job, claim.job_id)
            budget = job.spec.get("max_runtime_s")
            if budget is None or job.started_at is None:
                return None
            elapsed = (utcnow() - job.started_at).total_seconds()
        return time.monotonic() + budget - elapsed

    def execute(self, claim: Claim) -> JobStatus | None:
        """Run the claimed job to an outcome; returns the status written (None if lease lost)."""
        log = {"job_id": claim.job_id, "attempt": claim.attempt, "worker_id": self.worker_id}
        logger.info("job claimed", extra=log)
        deadline = self._deadline(claim)
        while True:
            outcome, message, exitcode, reason = self._run_child(claim, deadline, log)
            if outcome != RECYCLE or reason is not None:
                return self._record_outcome(claim, outcome, message, exitcode, reason, log)
            # The search continues in a fresh process, under the same lease.
            logger.info("search process recycled: %s", message, extra=log)

    def _run_child(
        self, claim: Claim, deadline: float | None, log: dict[str, object]
    ) -> tuple[str | None, str | None, int | None, StopReason | None]:
        """One search process, watched until it exits: (outcome, message, exit code, reason)."""
        stop = self._context.Event()
        receive, send = self._context.Pipe(duplex=False)
        payload = {"settings": self.settings.model_dump(mode="json"), "claim": asdict(claim)}
        child = self._context.Process(
            target=run_child, args=(payload, send, stop), name=f"search-{claim.job_id}"
        )
        child.start()
        send.close()

        reason: StopReason | None = None
        stop_asked_at = 0.0
        last_beat = time.monotonic()
        while True:
            child.join(timeout=self.settings.heartbeat_s)
            if not child.is_alive():
                break
            try:
                beat = self._heartbeat(claim)
                last_beat = time.monotonic()
            except DBAPIError as exc:
                # The database is away. The lease is only ours until it expires, so
                # past that point the search stops: another worker may own the job.
                logger.warning("heartbeat failed", extra={**log, "error": str(exc.orig)})
                held = time.monotonic() - last_beat < self.settings.lease_s
                beat = Heartbeat(held=held)
            if reason is None:
                reason = _stop_reason(beat, self.shutdown.is_set(), deadline)
                if reason is not None:
                    logger.info("stopping the search at the next epoch: %s", reason, extra=log)
                    stop.set()
                    stop_asked_at = time.monotonic()
            elif time.monotonic() - stop_asked_at > STOP_GRACE_S:
                logger.warning("search did not stop in time; killing it", extra=log)
                child.kill()
        outcome, message = _read_report(receive)
        return outcome, message, child.exitcode, reason

    def _record_outcome(
        self,
        claim: Claim,
        outcome: str | None,
        message: str | None,
        exitcode: int | None,
        reason: StopReason | None,
        log: dict[str, object],
    ) -> JobStatus | None:
        """The one place that decides what a child's exit means for the job."""
        if reason == "lease_lost" or outcome == LEASE_LOST:
            logger.warning("lease lost; another worker owns the job now", extra=log)
            return None
        status: JobStatus | None = None  # None: hand the job back to the queue
        error: str | None = None
        if outcome == SUCCEEDED:
            status = JobStatus.SUCCEEDED
        elif reason == "cancel":
            status, error = JobStatus.CANCELLED, "cancelled by request"
        elif reason == "timeout":
            status, error = JobStatus.FAILED, "timeout: the search ran past max_runtime_s"
        elif outcome == FAILED:
            status, error = JobStatus.FAILED, message
        elif reason == "shutdown" or outcome == STOPPED:
            error = None  # graceful shutdown: it resumes on another worker
        elif claim.attempt >= self.settings.max_attempts:
            status = JobStatus.FAILED
            error = (
                f"the search process died (exit code {exitcode}) "
                f"on each of {claim.attempt} attempts"
            )
        else:
            error = f"the search process died (exit code {exitcode}); retrying"

        def write(session: Session) -> None:
            if status is None:
                requeue_job(session=session, claim=claim, reason=error)
            else:
                finish_job(session=session, claim=claim, status=status, error=error)

        self._write_with_retry(write, log)
        logger.info("job %s", status or "requeued", extra={**log, "error": error})
        return status


def _stop_reason(beat: Heartbeat, shutting_down: bool, deadline: float | None) -> StopReason | None:
    if not beat.held:
        return "lease_lost"
    if beat.cancel_requested:
        return "cancel"
    if deadline is not None and time.monotonic() > deadline:
        return "timeout"
    if shutting_down:
        return "shutdown"
    return None
