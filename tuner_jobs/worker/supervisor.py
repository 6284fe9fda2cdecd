"""The worker supervisor: claim a job, run its search in a spawned child, keep the lease.

The supervisor never imports TensorFlow, so it can always spawn a clean child and
survive whatever happens in it (a crash, an out-of-memory kill). What each end means for
the job is decided in tuner_jobs.worker.outcomes; the processes are in .processes, the
tuner slots of parallel jobs in .parallel, the queue calls in .database.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from app.search.spec import StoredSpecError, load_spec
from app.settings import Settings
from app.store.claims import Claim, SlotClaim
from app.store.db import make_engine
from app.store.models import JobStatus, utcnow
from app.store.worker_files import TAKEOVERS
from tuner_jobs.search.child import Role
from tuner_jobs.worker.database import WorkerDatabase
from tuner_jobs.worker.outcomes import (
    ChildExit,
    JobAction,
    JobRecord,
    StopRequest,
    job_record,
    search_goes_on,
)
from tuner_jobs.worker.parallel import OwnSlot, SlotTender
from tuner_jobs.worker.presence import Presence
from tuner_jobs.worker.processes import SearchProcess, Spawner, reap_exited, watch
from tuner_jobs.worker.shutdown import Shutdown

logger = logging.getLogger(__name__)

# How often an idle worker looks for work between claims (app.store.queue.work_waiting).
LOOK_S = 0.2


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Budget:
    """A job's time budget as its worker keeps it: when its search must stop (max_runtime_s
    less the end phase's share, ResolvedSpec.search_seconds) as a time.monotonic()
    deadline counted from its first start, None without one; and whether it waits for a
    first completed trial (ResolvedSpec.budget_waits_for_a_trial)."""

    deadline: float | None = None
    waits_for_a_trial: bool = False


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
        # Its record in the data dir: GET /healthz counts the workers alive by them.
        self.presence = Presence(settings, self.worker_id)
        self.database = WorkerDatabase(self.engine, settings, self.worker_id, self.presence)
        self.spawner = Spawner(settings)
        self.slots = SlotTender(
            database=self.database, spawner=self.spawner, shutdown=self.shutdown, settings=settings
        )
        # A parallel job this worker ran a tuner for, while its other tuners still train.
        self._helped: str | None = None

    def install_signal_handlers(self) -> None:
        self.shutdown.install_signal_handlers()

    def run(self, *, max_jobs: int | None = None) -> None:
        logger.info("worker started", extra={"worker_id": self.worker_id})
        self.presence.start()
        try:
            self._loop(max_jobs)
        finally:
            self.presence.stop()
        self.spawner.close()
        self.engine.dispose()

    def _loop(self, max_jobs: int | None) -> None:
        done = 0
        while not self.shutdown.is_set() and (max_jobs is None or done < max_jobs):
            try:
                claim = self.claim()
            except DBAPIError as exc:  # the database is away: wait for it, keep no state
                logger.warning("cannot reach the database", extra={"error": str(exc.orig)})
                claim = None
            if claim is None:
                reap_exited()
                self.keep_spare()
                self._wait_for_work()
                continue
            if isinstance(claim, SlotClaim):
                self.execute_slot(claim)  # helping another worker's parallel job
            else:
                done += 1
                self.execute(claim, then_spare=max_jobs is None or done < max_jobs)

    def _wait_for_work(self) -> None:
        """Up to poll_s, looking every LOOK_S with a read that takes no lock; the claim
        itself runs when that read finds work, and at least once per poll_s."""
        deadline = time.monotonic() + self.settings.poll_s
        while not self.shutdown.wait(min(LOOK_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or self.database.work_waiting():
                return

    def claim(self) -> Claim | SlotClaim | None:
        """A tuner slot of a running parallel job first (finish started work), else a job."""
        return self.database.claim()

    def keep_spare(self) -> None:
        """While idle, and as soon as a job's search ends, keep one search process with
        TensorFlow already imported, so the next job starts training seconds sooner
        (TUNER_PREWARM)."""
        if not self.settings.prewarm or self.spawner.has_spare():
            return
        if self._helped is not None and self.database.still_running(self._helped):
            # Its other tuners may train on this machine: TensorFlow's import is seconds
            # of CPU taken from them. The spare waits until that search is over.
            return
        self._helped = None
        self.spawner.keep_spare()

    def _plan(self, claim: Claim) -> tuple[Budget, bool]:
        """From the job's spec: its Budget, and whether its trials run against a chief
        (ResolvedSpec.parallel: "auto" or a number above 1)."""
        started_at, stored = self.database.start_and_spec(claim.job_id)
        try:
            spec = load_spec(stored)
        except StoredSpecError:
            # The search process fails the job, naming the bad fields (StoredSpecError).
            return Budget(), False
        # The search stops early enough for the end phase to run inside the budget.
        seconds, parallel = spec.search_seconds, spec.parallel
        if seconds is None or started_at is None:
            return Budget(), parallel
        elapsed = (utcnow() - started_at).total_seconds()
        deadline = time.monotonic() + seconds - elapsed
        return Budget(deadline, spec.budget_waits_for_a_trial), parallel

    def execute(self, claim: Claim, *, then_spare: bool = True) -> JobStatus | None:
        """Run the claimed job to an outcome; returns the status written (None if requeued
        or the lease was lost). `then_spare`: another job may follow (a spare is kept)."""
        log = {"job_id": claim.job_id, "attempt": claim.attempt, "worker_id": self.worker_id}
        self._claimed("job claimed", claim, log)
        budget, parallel = self._plan(claim)
        run = self._run_parallel if parallel else self._run_search
        ended, reason = run(claim, budget, log)
        while search_goes_on(ended, reason):
            # The search (a chief too, when no other tuner takes part) continues in a
            # fresh process, under the same lease.
            logger.info("search process recycled: %s", ended.message, extra=log)
            ended, reason = run(claim, budget, log)
        # The job's search is over. Unless its process goes on to the next job
        # (Spawner.take_back), the next job's starts importing TensorFlow now, while this
        # one's outcome is written and the next is claimed, not after (a queue that is
        # never empty would otherwise never see a spare).
        if then_spare and not self.shutdown.is_set():
            try:
                self.keep_spare()
            except DBAPIError:
                pass  # the database is away: the idle loop keeps one once it is back
        completed = (
            self.database.completed_trials(claim.job_id) if reason is StopRequest.TIME_BUDGET else 0
        )
        record = job_record(
            ended,
            reason,
            attempt=claim.attempt,
            max_attempts=self.settings.max_attempts,
            completed_trials=completed,
        )
        return self._record(claim, record, log)

    def _watch(
        self,
        child: SearchProcess,
        claim: Claim,
        budget: Budget,
        log: dict[str, object],
        *,
        each_beat: Callable[[StopRequest | None], None] | None = None,
    ) -> StopRequest | None:
        return watch(
            child,
            beat=self.database.lease(claim, log).beat,
            shutdown=self.shutdown,
            heartbeat_s=self.settings.heartbeat_s,
            deadline=budget.deadline,
            log=log,
            each_beat=each_beat,
            completed_trials=lambda: self.database.completed_trials(claim.job_id),
            budget_waits_for_a_trial=budget.waits_for_a_trial,
        )

    def _run_search(
        self, claim: Claim, budget: Budget, log: dict[str, object]
    ) -> tuple[ChildExit, StopRequest | None]:
        """The whole search in one process, watched until it ends."""
        child = self.spawner.spawn(Role.SEARCH, claim)
        reason = self._watch(child, claim, budget, log)
        ended = child.result()
        self.spawner.take_back(child)
        return ended, reason

    def _run_parallel(
        self, claim: Claim, budget: Budget, log: dict[str, object]
    ) -> tuple[ChildExit, StopRequest | None]:
        """A parallel job: its chief in one child, which runs tuner0's trials itself, and
        this worker's own tuner beside it (parallel.OwnSlot). The chief's end is the job's."""
        chief = self.spawner.spawn(Role.CHIEF, claim)
        own = OwnSlot(claim, chief, self.slots, log)
        reason = self._watch(chief, claim, budget, log, each_beat=own.after_beat)
        own.close()
        ended = chief.result()
        self.spawner.take_back(chief)
        return ended, reason

    def execute_slot(self, slot: SlotClaim) -> None:
        """Run one tuner of another worker's parallel job until its oracle says it is done."""
        log = {"job_id": slot.job_id, "slot": slot.slot, "worker_id": self.worker_id}
        self._claimed("tuner slot claimed", slot, log)
        self.slots.run_slot(slot, log)
        self._helped = slot.job_id

    def _claimed(self, what: str, claim: Claim | SlotClaim, log: dict[str, object]) -> None:
        if claim.taken_over_from is None:
            logger.info(what, extra=log)
            return
        # Its worker stopped heartbeating (it died, or lost the database) a lease ago.
        logger.warning(
            "%s: taken over from a worker whose lease expired",
            what,
            extra={**log, "previous_worker": claim.taken_over_from},
        )
        self.presence.count(TAKEOVERS)

    def _record(self, claim: Claim, record: JobRecord, log: dict[str, object]) -> JobStatus | None:
        if record.action is JobAction.LEAVE:
            # Found by a heartbeat or by the search process's fenced writes, whichever first.
            self.database.lease_lost(
                claim.job_id, log, what="job lease", held_attempt=claim.attempt
            )
            return None
        written = self.database.record_job(claim, record, log)
        if written is False:
            # The lease ran out unnoticed (this worker stalled): the outcome is not ours to
            # write, and saying "succeeded" here would contradict the job's real owner.
            self.database.lease_lost(
                claim.job_id, log, what="job lease", held_attempt=claim.attempt
            )
            return None
        logger.info("job %s", record.status or "requeued", extra={**log, "error": record.error})
        return record.status
