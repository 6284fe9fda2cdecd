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
from dataclasses import asdict
from multiprocessing.connection import Connection

from sqlalchemy import Engine

from app.db import make_engine, write_session
from app.models import JobStatus
from app.queue import Claim, claim_job, finish_job, heartbeat, reap_exhausted, requeue_job
from app.settings import Settings
from tuner_jobs.child import FAILED, LEASE_LOST, STOPPED, SUCCEEDED, run_child

logger = logging.getLogger(__name__)

# After asking a child to stop, how long it gets to reach an epoch boundary.
STOP_GRACE_S = 60.0


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
        self.engine: Engine = make_engine(settings.database_url, application_name="worker")
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
            claim = self.claim()
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

    def _heartbeat(self, claim: Claim):  # type: ignore[no-untyped-def]
        with write_session(self.engine) as session:
            return heartbeat(session=session, claim=claim, lease_s=self.settings.lease_s)

    def execute(self, claim: Claim) -> JobStatus | None:
        """Run the claimed job to an outcome; returns the status written (None if lease lost)."""
        log = {"job_id": claim.job_id, "attempt": claim.attempt, "worker_id": self.worker_id}
        logger.info("job claimed", extra=log)
        stop = self._context.Event()
        receive, send = self._context.Pipe(duplex=False)
        payload = {
            "settings": self.settings.model_dump(mode="json"),
            "claim": asdict(claim),
        }
        child = self._context.Process(
            target=run_child, args=(payload, send, stop), name=f"search-{claim.job_id}"
        )
        child.start()
        send.close()

        cancelled = lost = False
        stop_asked_at: float | None = None
        while child.is_alive():
            child.join(timeout=self.settings.heartbeat_s)
            if not child.is_alive():
                break
            beat = self._heartbeat(claim)
            if not beat.held:
                lost = True
            cancelled = cancelled or beat.cancel_requested
            if (lost or cancelled or self.shutdown.is_set()) and stop_asked_at is None:
                stop.set()
                stop_asked_at = time.monotonic()
            if stop_asked_at is not None and time.monotonic() - stop_asked_at > STOP_GRACE_S:
                logger.warning("search did not stop in time; killing it", extra=log)
                child.kill()
        child.join()
        outcome, message = _read_report(receive)
        return self._record_outcome(claim, outcome, message, child.exitcode, cancelled, lost, log)

    def _record_outcome(  # noqa: PLR0913 - one place decides what a child's exit means
        self,
        claim: Claim,
        outcome: str | None,
        message: str | None,
        exitcode: int | None,
        cancelled: bool,
        lost: bool,
        log: dict[str, object],
    ) -> JobStatus | None:
        if lost or outcome == LEASE_LOST:
            logger.warning("lease lost; another worker owns the job now", extra=log)
            return None
        status: JobStatus | None
        error: str | None = None
        if outcome == SUCCEEDED:
            status = JobStatus.SUCCEEDED
        elif cancelled:
            status, error = JobStatus.CANCELLED, "cancelled by request"
        elif outcome == STOPPED or self.shutdown.is_set():
            status = None  # graceful shutdown: hand the job back, it resumes elsewhere
        elif outcome == FAILED:
            status, error = JobStatus.FAILED, message
        elif claim.attempt >= self.settings.max_attempts:
            status = JobStatus.FAILED
            error = (
                f"the search process died (exit code {exitcode}) "
                f"on each of {claim.attempt} attempts"
            )
        else:
            status = None
        with write_session(self.engine) as session:
            if status is None:
                requeue_job(
                    session=session,
                    claim=claim,
                    reason=f"requeued (search exit code {exitcode})" if outcome is None else None,
                )
            else:
                finish_job(session=session, claim=claim, status=status, error=error)
        logger.info("job %s", status or "requeued", extra=log)
        return status
