"""Search processes: spawning them (from the spare one when there is one), and the one loop
that watches a job's search process until it ends, used by single and parallel runs alike."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from app.settings import Settings
from app.store.claims import Claim, SlotClaim
from app.store.queue import Heartbeat
from tuner_jobs.search.child import ChildJob, ChildReport, Role, run_spare
from tuner_jobs.worker.memory import (
    children_peak_rss,
    memory_limit_bytes,
    oom_kills,
    rss_high_water,
    rss_now,
)
from tuner_jobs.worker.outcomes import ChildExit, StopRequest, stop_request
from tuner_jobs.worker.shutdown import Shutdown

logger = logging.getLogger(__name__)

# After asking a child to stop, how long it gets to reach an epoch boundary.
STOP_GRACE_S = 60.0


def _read_report(receive: Connection) -> ChildReport | None:
    """The child's last word on its job, or None when it died before saying anything."""
    try:
        return receive.recv() if receive.poll() else None
    except (EOFError, OSError):
        return None


class SearchProcess:
    """One spawned child (tuner_jobs.search.child.run_spare): its stop event and its last word.

    The process starts before it has its job. A `warm` one (Spawner.keep_spare) imports
    TensorFlow while it waits, so an idle worker has one ready; otherwise the job follows
    at once and TensorFlow is imported only if the job gets that far. One whose job
    succeeded may say it can run another (ChildReport.reusable): Spawner.take_back keeps
    it for the worker's next job, or lets it go."""

    def __init__(self, context: Any, settings: Settings, *, warm: bool) -> None:
        self.stop = context.Event()
        # Set before `stop` when the stop is the time budget's: the search process then
        # finishes the job instead of handing it back (tuner_jobs.search.life_cycle).
        self.out_of_time = context.Event()
        # Set by a chief once its own tuner (tuner0) has run out of trials.
        self.searched = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        jobs_out, self._jobs = context.Pipe(duplex=False)
        self.process = context.Process(
            target=run_spare,
            args=(
                settings.worker_nice,
                warm,
                jobs_out,
                send,
                self.stop,
                self.out_of_time,
                self.searched,
            ),
            name="search-spare",
        )
        self.process.start()
        send.close()
        jobs_out.close()
        # TUNER_SEARCH_RSS_CAP_MB, in bytes (0: none).
        self.memory_cap = settings.search_rss_cap_mb << 20
        self._new_job()

    def _new_job(self) -> None:
        """What is watched per job, from its start (a reused process's included)."""
        self._children_peak_before = children_peak_rss()
        self._oom_kills_before = oom_kills()
        self.stop_asked_at: float | None = None
        # For the out-of-memory diagnosis (outcomes.death): its peak RSS, sampled at each
        # wake-up of the watch loop, and whether a SIGKILL came from us.
        self.peak_rss = 0
        self.killed = False
        # The memory cap, in bytes, once it killed the process.
        self.killed_over_cap: int | None = None
        # Its job succeeded and it waits for another (ChildReport.reusable).
        self.reusable = False

    def _sample_memory(self) -> None:
        pid = self.process.pid
        if pid is None:
            return
        self.peak_rss = max(self.peak_rss, rss_high_water(pid) or 0)
        if self.memory_cap and self.killed_over_cap is None and self.alive():
            rss = rss_now(pid) or 0
            if rss > self.memory_cap:
                # As the kernel's OOM killer would, but before the machine runs out, and
                # knowing why: the job's error says it (outcomes.death).
                logger.warning(
                    "search process over its memory cap; killing it",
                    extra={"rss_mb": rss >> 20, "cap_mb": self.memory_cap >> 20},
                )
                self.killed_over_cap = self.memory_cap
                self.process.kill()

    def start(self, settings: Settings, role: Role, claim: Claim | SlotClaim) -> SearchProcess:
        child_job = ChildJob(settings=settings.model_dump(mode="json"), role=role, claim=claim)
        try:
            self._jobs.send(child_job)
        except (BrokenPipeError, OSError):
            self._jobs.close()  # it died already; result() reports a process that said nothing
        return self

    def ready_for_another(self) -> None:
        """Its job succeeded and the process goes on: what was watched of that job is
        cleared for the next (its events included: the child only reads them at a job)."""
        self.stop.clear()
        self.out_of_time.clear()
        self.searched.clear()
        self._new_job()

    def discard(self) -> None:
        """A spare no longer needed: closing its pipe ends it."""
        self._jobs.close()
        self._receive.close()
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
        self._sample_memory()
        wait([self._receive, self.process.sentinel, *wakeup], timeout=timeout)
        self._sample_memory()
        return self._reported() or not self.alive()

    def exited(self, timeout: float, wakeup: list[int]) -> None:
        """Wait up to `timeout` for the child's exit (or for a file in `wakeup`)."""
        self._sample_memory()
        wait([self.process.sentinel, *wakeup], timeout=timeout)
        self._sample_memory()

    def _reported(self) -> bool:
        try:
            return bool(self._receive.poll())
        except (EOFError, OSError):
            return False

    def ask_stop(self, reason: StopRequest | None = None) -> None:
        """Stop at the next epoch boundary; killed if it takes longer than STOP_GRACE_S."""
        if self.stop_asked_at is None:
            if reason is StopRequest.TIME_BUDGET:
                self.out_of_time.set()
            self.stop.set()
            self.stop_asked_at = time.monotonic()
        elif time.monotonic() - self.stop_asked_at > STOP_GRACE_S and self.alive():
            logger.warning("search process did not stop in time; killing it")
            self.killed = True
            self.process.kill()

    def kill(self) -> None:
        if self.alive():
            self.killed = True
            self.process.kill()
        self.process.join()

    def result(self) -> ChildExit:
        """Its report and exit code once it has reported (the exit code is None while it
        still exits) or died."""
        report = _read_report(self._receive)
        self.reusable = (
            report is not None
            and report.reusable
            and self.stop_asked_at is None
            and not self.killed
            and self.alive()
        )
        if not self.reusable:
            # It ends by itself (or has ended); closing its pipes tells a child that
            # offered to go on that it will get no other job.
            self._jobs.close()
            self._receive.close()
        if report is None:
            self.process.join()  # it died without a word: its exit code says how
            # Its last seconds of growth fall between two samples; the kernel's count of the
            # largest reaped child covers them when it grew at this reaping.
            if (reaped := children_peak_rss()) > self._children_peak_before:
                self.peak_rss = max(self.peak_rss, reaped)
        after = oom_kills() if report is None else None
        return ChildExit(
            report,
            self.process.exitcode,
            peak_rss_bytes=self.peak_rss or None,
            memory_limit_bytes=memory_limit_bytes(),
            killed_by_worker=self.killed,
            memory_cap_bytes=self.killed_over_cap,
            # The container's OOM killer killed something while this process lived: when
            # it is this process that died of SIGKILL, all but certainly it.
            oom_killed=after is not None
            and self._oom_kills_before is not None
            and after > self._oom_kills_before,
        )


def reap_exited() -> None:
    """Collect search processes that exited after their report was read (result() does not
    wait for TensorFlow's teardown): else each stays a zombie until the next one starts."""
    multiprocessing.active_children()


class Spawner:
    """Where a worker's search processes come from: its spare when that one is still alive,
    else a fresh process (spawned, never forked: the child imports TensorFlow)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._spare: SearchProcess | None = None

    def spawn(self, role: Role, claim: Claim | SlotClaim) -> SearchProcess:
        spare, self._spare = self._spare, None
        if spare is not None and not spare.alive():
            spare.discard()
            spare = None
        if spare is None:
            spare = SearchProcess(self._context, self.settings, warm=False)
        return spare.start(self.settings, role, claim)

    def take_back(self, child: SearchProcess) -> None:
        """A job's search process, its result read: kept as the spare when it offered to
        run another job (SearchProcess.result) and none is kept already."""
        if not child.reusable:
            return
        if self.has_spare():
            child.discard()
            return
        child.ready_for_another()
        self._spare = child
        logger.info("search process kept for the next job", extra={"spare_pid": child.process.pid})

    def has_spare(self) -> bool:
        return self._spare is not None and self._spare.alive()

    def keep_spare(self) -> None:
        """A process with TensorFlow already imported, for the next job (TUNER_PREWARM)."""
        if not self.has_spare():
            self._spare = SearchProcess(self._context, self.settings, warm=True)
            logger.info(
                "spare search process started", extra={"spare_pid": self._spare.process.pid}
            )

    def close(self) -> None:
        if self._spare is not None:
            self._spare.discard()
            self._spare = None


def watch(
    child: SearchProcess,
    *,
    beat: Callable[[], Heartbeat],
    shutdown: Shutdown,
    heartbeat_s: float,
    deadline: float | None,
    log: dict[str, object],
    each_beat: Callable[[StopRequest | None], None] | None = None,
    completed_trials: Callable[[], int | None] = lambda: None,
    budget_waits_for_a_trial: bool = False,
) -> StopRequest | None:
    """Watch a job's search process until it has reported or died, renewing the job's lease
    (`beat`) every `heartbeat_s`; from the first stop reason on, ask it at each beat to
    stop (it is killed past STOP_GRACE_S). `each_beat` runs after each beat with the reason
    so far (a parallel run tends its own tuner there). Returns why it was stopped, if it
    was; its end is then `child.result()`.

    A time budget spent before any trial completed (`completed_trials`, None when it could
    not be read) has decided the job: it fails (outcomes.job_record), and the search process,
    which may still be importing TensorFlow or building its first model, is not waited for.
    Unless `budget_waits_for_a_trial` (a budget the service chose, ResolvedSpec): then the
    search goes on to its first completed trial, and stops there."""
    reason: StopRequest | None = None
    while not child.finished(heartbeat_s, shutdown.wakeup()):
        heartbeat = beat()
        if reason is None:
            reason = stop_request(
                heartbeat, shutting_down=shutdown.is_set(), deadline=deadline, now=time.monotonic()
            )
            if reason is StopRequest.TIME_BUDGET and completed_trials() == 0:
                if budget_waits_for_a_trial:
                    reason = None  # asked again at the next beat
                else:
                    logger.info("time budget spent before any trial completed", extra=log)
                    child.kill()
                    break
        if reason is not None:
            if child.stop_asked_at is None:
                logger.info("stopping the search at the next epoch: %s", reason, extra=log)
            child.ask_stop(reason)
        if each_beat is not None:
            each_beat(reason)
    return reason
