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
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.db import make_engine, write_session
from app.store.models import Job, JobStatus, SlotStatus, utcnow
from app.store.queue import (
    Claim,
    Heartbeat,
    SlotClaim,
    claim_job,
    claim_slot,
    finish_job,
    heartbeat,
    heartbeat_slot,
    reap_exhausted,
    release_slot,
    requeue_job,
    work_waiting,
)
from tuner_jobs.search.child import (
    CHIEF,
    FAILED,
    LEASE_LOST,
    RECYCLE,
    SEARCH,
    STOPPED,
    SUCCEEDED,
    TUNER,
    run_spare,
)

logger = logging.getLogger(__name__)

# After asking a child to stop, how long it gets to reach an epoch boundary.
STOP_GRACE_S = 60.0
# How often an idle worker looks for work between claims (app.store.queue.work_waiting).
LOOK_S = 0.2

StopReason = Literal["lease_lost", "cancel", "timeout", "shutdown"]


def _read_report(receive: Connection) -> tuple[str | None, str | None]:
    """The child's last word, or (None, None) when it died before saying anything."""
    try:
        return receive.recv() if receive.poll() else (None, None)
    except (EOFError, OSError):
        return None, None
    finally:
        receive.close()


class Shutdown:
    """Set on SIGTERM or SIGINT. While unset it also offers a pipe that becomes readable
    when it is set, so a supervisor waiting on its child wakes at once and asks the
    search to stop at its next epoch, not at its next heartbeat."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def set(self) -> None:
        self._event.set()
        try:
            os.write(self._write, b"!")  # safe in a signal handler
        except OSError:
            pass  # already readable

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def wakeup(self) -> list[int]:
        """What to add to a wait() so that it ends when this is set (nothing once it is:
        the pipe stays readable)."""
        return [] if self.is_set() else [self._read]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class SearchProcess:
    """One spawned child (tuner_jobs.search.child.run_spare): its stop event and its last word.

    The process starts before it has its job. A `warm` one (Worker.keep_spare) imports
    TensorFlow while it waits, so an idle worker has one ready; otherwise the job's
    payload follows at once and TensorFlow is imported only if the job gets that far."""

    def __init__(self, context: Any, settings: Settings, *, warm: bool) -> None:
        self.stop = context.Event()
        # Set by a chief once its own tuner (tuner0) has run out of trials.
        self.searched = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        jobs_out, self._jobs = context.Pipe(duplex=False)
        self.process = context.Process(
            target=run_spare,
            args=(settings.worker_nice, warm, jobs_out, send, self.stop, self.searched),
            name="search-spare",
        )
        self.process.start()
        send.close()
        jobs_out.close()
        self.stop_asked_at: float | None = None

    def start(self, settings: Settings, role: str, claim: Claim | SlotClaim) -> SearchProcess:
        payload = {
            "settings": settings.model_dump(mode="json"),
            "role": role,
            "claim": asdict(claim),
        }
        try:
            self._jobs.send(payload)
        except (BrokenPipeError, OSError):
            pass  # it died already; result() reports a process that said nothing
        finally:
            self._jobs.close()
        return self

    def discard(self) -> None:
        """A spare no longer needed: closing its pipe ends it."""
        self._jobs.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def join(self, timeout: float) -> None:
        self.process.join(timeout=timeout)

    def finished(self, timeout: float, wakeup: list[int]) -> bool:
        """Wait up to `timeout` for the child's last word or its death (or for a file in
        `wakeup` to become readable). A child that has reported is done: its
        interpreter's exit (TensorFlow's teardown takes about a second) need not hold up
        the job's outcome."""
        wait([self._receive, self.process.sentinel, *wakeup], timeout=timeout)
        return self._reported() or not self.alive()

    def exited(self, timeout: float, wakeup: list[int]) -> None:
        """Wait up to `timeout` for the child's exit (or for a file in `wakeup`)."""
        wait([self.process.sentinel, *wakeup], timeout=timeout)

    def _reported(self) -> bool:
        try:
            return bool(self._receive.poll())
        except (EOFError, OSError):
            return False

    def ask_stop(self) -> None:
        """Stop at the next epoch boundary; killed if it takes longer than STOP_GRACE_S."""
        if self.stop_asked_at is None:
            self.stop.set()
            self.stop_asked_at = time.monotonic()
        elif time.monotonic() - self.stop_asked_at > STOP_GRACE_S and self.alive():
            logger.warning("search process did not stop in time; killing it")
            self.process.kill()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.join()

    def result(self) -> tuple[str | None, str | None, int | None]:
        """(outcome, message, exit code) once it has reported (the exit code is None while
        it still exits) or died."""
        outcome, message = _read_report(self._receive)
        if outcome is None:
            self.process.join()  # it died without a word: its exit code says how
        return outcome, message, self.process.exitcode


class Worker:
    def __init__(self, settings: Settings, *, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.engine: Engine = make_engine(
            settings.database_url,
            application_name="worker",
            busy_timeout_s=settings.sqlite_busy_timeout_s,
        )
        self.shutdown = Shutdown()
        self._context = multiprocessing.get_context("spawn")
        self._spare: SearchProcess | None = None
        # A parallel job this worker ran a tuner for, while its other tuners still train.
        self._helped: str | None = None

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
                self.keep_spare()
                self._wait_for_work()
                continue
            if isinstance(claim, SlotClaim):
                self.execute_slot(claim)  # helping another worker's parallel job
            else:
                self.execute(claim)
                done += 1
        if self._spare is not None:
            self._spare.discard()
        self.engine.dispose()

    def _wait_for_work(self) -> None:
        """Up to poll_s, looking every LOOK_S with a read that takes no lock; the claim
        itself runs when that read finds work, and at least once per poll_s."""
        deadline = time.monotonic() + self.settings.poll_s
        while not self.shutdown.wait(min(LOOK_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            try:
                with Session(self.engine) as session:
                    if work_waiting(session=session):
                        return
            except DBAPIError:
                return  # the claim will say so, and wait

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

    def _heartbeat(self, claim: Claim | SlotClaim) -> Heartbeat:
        with write_session(self.engine) as session:
            if isinstance(claim, SlotClaim):
                return heartbeat_slot(session=session, claim=claim, lease_s=self.settings.lease_s)
            return heartbeat(session=session, claim=claim, lease_s=self.settings.lease_s)

    def _beat(self, claim: Claim, since: float, log: dict[str, object]) -> tuple[Heartbeat, float]:
        """Renew the job's lease: (heartbeat, when the lease was last renewed). While the
        database is away the lease stays ours until it expires; past that point the
        search stops, as another worker may own the job."""
        try:
            return self._heartbeat(claim), time.monotonic()
        except DBAPIError as exc:
            logger.warning("heartbeat failed", extra={**log, "error": str(exc.orig)})
            return Heartbeat(held=time.monotonic() - since < self.settings.lease_s), since

    def _plan(self, claim: Claim) -> tuple[float | None, int]:
        """From the job's spec: its max_runtime_s as a time.monotonic() deadline, counted
        from its first start, and how many trials run at once."""
        with Session(self.engine) as session:
            job = session.get_one(Job, claim.job_id)
            budget = job.spec.get("max_runtime_s")
            parallel = int(job.spec.get("parallel_trials", 1))
            if budget is None or job.started_at is None:
                return None, parallel
            elapsed = (utcnow() - job.started_at).total_seconds()
        return time.monotonic() + budget - elapsed, parallel

    def execute(self, claim: Claim) -> JobStatus | None:
        """Run the claimed job to an outcome; returns the status written (None if lease lost)."""
        log = {"job_id": claim.job_id, "attempt": claim.attempt, "worker_id": self.worker_id}
        logger.info("job claimed", extra=log)
        deadline, parallel_trials = self._plan(claim)
        if parallel_trials > 1:
            outcome, message, exitcode, reason = self._run_parallel(claim, deadline, log)
            return self._record_outcome(claim, outcome, message, exitcode, reason, log)
        while True:
            outcome, message, exitcode, reason = self._run_child(claim, deadline, log)
            if outcome != RECYCLE or reason is not None:
                return self._record_outcome(claim, outcome, message, exitcode, reason, log)
            # The search continues in a fresh process, under the same lease.
            logger.info("search process recycled: %s", message, extra=log)

    def _spawn(self, role: str, claim: Claim | SlotClaim) -> SearchProcess:
        spare, self._spare = self._spare, None
        if spare is None or not spare.alive():
            spare = SearchProcess(self._context, self.settings, warm=False)
        return spare.start(self.settings, role, claim)

    def keep_spare(self) -> None:
        """While idle, keep one search process with TensorFlow already imported, so the
        next job starts training seconds sooner (TUNER_PREWARM)."""
        if not self.settings.prewarm or (self._spare is not None and self._spare.alive()):
            return
        if self._helped is not None and self._still_running(self._helped):
            # Its other tuners may train on this machine: TensorFlow's import is seconds
            # of CPU taken from them. The spare waits until that search is over.
            return
        self._helped = None
        self._spare = SearchProcess(self._context, self.settings, warm=True)

    def _still_running(self, job_id: str) -> bool:
        try:
            with Session(self.engine) as session:
                job = session.get(Job, job_id)  # None: deleted since
                return job is not None and job.status == JobStatus.RUNNING
        except DBAPIError:
            return True

    def _run_child(
        self, claim: Claim, deadline: float | None, log: dict[str, object]
    ) -> tuple[str | None, str | None, int | None, StopReason | None]:
        """One search process, watched until it exits: (outcome, message, exit code, reason)."""
        child = self._spawn(SEARCH, claim)
        reason: StopReason | None = None
        last_beat = time.monotonic()
        while True:
            if child.finished(self.settings.heartbeat_s, self.shutdown.wakeup()):
                break
            beat, last_beat = self._beat(claim, last_beat, log)
            reason = reason or _stop_reason(beat, self.shutdown.is_set(), deadline)
            if reason is not None:
                if child.stop_asked_at is None:
                    logger.info("stopping the search at the next epoch: %s", reason, extra=log)
                child.ask_stop()
        return (*child.result(), reason)

    def _run_parallel(
        self, claim: Claim, deadline: float | None, log: dict[str, object]
    ) -> tuple[str | None, str | None, int | None, StopReason | None]:
        """A parallel job: its chief in one child, which runs tuner0's trials itself.
        Once tuner0 has no more trials, this worker (like any free one) takes over a
        slot of this job that is still open, i.e. whose tuner died mid-trial, in a
        second child. The chief's outcome is the job's."""
        chief = self._spawn(CHIEF, claim)
        tuner: SearchProcess | None = None
        slot: SlotClaim | None = None
        reason: StopReason | None = None
        last_beat = time.monotonic()
        while True:
            if chief.finished(self.settings.heartbeat_s, self.shutdown.wakeup()):
                break
            beat, last_beat = self._beat(claim, last_beat, log)
            reason = reason or _stop_reason(beat, self.shutdown.is_set(), deadline)
            if reason is not None:
                if chief.stop_asked_at is None:
                    logger.info("stopping the parallel search: %s", reason, extra=log)
                for process in (chief, tuner):
                    if process is not None:
                        process.ask_stop()
            if slot is not None and tuner is not None:
                tuner, slot = self._tend_tuner(slot, tuner, log)
            if tuner is None and reason is None and chief.searched.is_set():
                slot = self._claim_own_slot(claim)
                tuner = self._spawn(TUNER, slot) if slot is not None else None
        if tuner is not None and slot is not None:
            # The chief is gone, so a tuner still running waits for an oracle that will
            # never answer: let it end its epoch if it is stopping, else stop it now.
            if tuner.stop_asked_at is not None:
                tuner.join(timeout=STOP_GRACE_S)
            tuner.kill()
            self._finish_tuner(slot, *tuner.result(), stopping=True, log=log)
        return (*chief.result(), reason)

    def _claim_own_slot(self, claim: Claim) -> SlotClaim | None:
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

    def _tend_tuner(
        self, slot: SlotClaim, tuner: SearchProcess, log: dict[str, object]
    ) -> tuple[SearchProcess | None, SlotClaim | None]:
        """Heartbeat a tuner's slot; when its process exits, record what it means."""
        if tuner.alive():
            try:
                beat = self._heartbeat(slot)
            except DBAPIError:
                return tuner, slot
            if not beat.held:
                tuner.kill()  # its chief restarted or the job ended: nobody will answer it
            elif beat.cancel_requested or self.shutdown.is_set():
                tuner.ask_stop()
            return tuner, slot
        outcome, message, exitcode = tuner.result()
        if outcome == RECYCLE and tuner.stop_asked_at is None:
            logger.info("tuner process recycled: %s", message, extra=log)
            return self._spawn(TUNER, slot), slot
        self._finish_tuner(slot, outcome, message, exitcode, stopping=False, log=log)
        return None, None

    def _finish_tuner(
        self,
        slot: SlotClaim,
        outcome: str | None,
        message: str | None,
        exitcode: int | None,
        *,
        stopping: bool,
        log: dict[str, object],
    ) -> None:
        """Hand a slot back: DONE when its tuner ran out of trials, else OPEN for another
        worker to rerun its interrupted trial (FAILED after max_attempts deaths)."""
        error: str | None = None
        if outcome == SUCCEEDED:
            status = SlotStatus.DONE
        elif outcome == LEASE_LOST:
            return
        elif stopping or outcome == STOPPED:
            status = SlotStatus.OPEN
        else:
            error = message or f"the tuner process died (exit code {exitcode})"
            status = (
                SlotStatus.FAILED if slot.attempt >= self.settings.max_attempts else SlotStatus.OPEN
            )

        def write(session: Session) -> None:
            release_slot(session=session, claim=slot, status=status, error=error)

        self._write_with_retry(write, {**log, "slot": slot.slot})
        logger.info("tuner slot %s", status, extra={**log, "slot": slot.slot, "error": error})

    def execute_slot(self, slot: SlotClaim) -> None:
        """Run one tuner of another worker's parallel job until its oracle says it is done."""
        log = {"job_id": slot.job_id, "slot": slot.slot, "worker_id": self.worker_id}
        logger.info("tuner slot claimed", extra=log)
        tuner: SearchProcess | None = self._spawn(TUNER, slot)
        current: SlotClaim | None = slot
        while tuner is not None and current is not None:
            tuner.exited(self.settings.heartbeat_s, self.shutdown.wakeup())
            tuner, current = self._tend_tuner(current, tuner, log)
        self._helped = slot.job_id

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
