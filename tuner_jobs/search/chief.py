"""The chief of a parallel job: KerasTuner's oracle served over gRPC to tuner workers.

This is KerasTuner's own distributed tuning (a chief serves the oracle; workers
named tuner0, tuner1, ... ask it for trials), with four changes that its built-in
`oracle_chief.start_server` cannot make:

- the chief runs tuner0's trials itself, in the process that holds the oracle (a
  local tuner of the same oracle object; KerasTuner's per-oracle lock keeps it and
  the server's threads apart), so a job of N parallel trials costs N processes, not
  N + 1, and its first trial starts as soon as the search is built;
- the server listens on a free port and the chief publishes "host:port" and the
  job's other slots (tuner1 ... tuner<N-1>) in the database, where worker
  supervisors on any machine find them;
- the chief is done when tuner0 has been told STOPPED and no trial is in flight. It
  does not wait for every tuner id it ever saw to say goodbye (KerasTuner's rule),
  so a tuner worker that died between trials cannot hold the job forever; one that
  died during a trial leaves it in the oracle's `ongoing_trials`, and whoever
  takes its slot over (the chief's own supervisor, once tuner0 is done) reruns it
  under the same tuner id;
- its search's life cycle (tuner_jobs.search.life_cycle) is a one-process search's:
  the best model kept as trials end, whichever tuner ran them, and the same end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.search.spec import ResolvedSpec
from app.settings import Settings
from app.store.search_values import SearchJob
from tuner_jobs.search.child import Role
from tuner_jobs.search.keras_tuner_compat import check_consecutive_failures
from tuner_jobs.search.recorder import LeaseLost, TrialRecorder, claim_held
from tuner_jobs.search.runner import build_search, search
from tuner_jobs.search.tuners import SearchStopped, SupervisedStop

if TYPE_CHECKING:
    from app.store.search_gateway import SearchDatabase

logger = logging.getLogger(__name__)

# How often the chief looks for the last trials' end, once tuner0 is done.
POLL_S = 0.1
# How often the chief looks at its slots in the database.
SLOTS_EVERY_S = 2.0
# The chief runs trials itself as this tuner; slots 1.. are the other tuners'.
CHIEF_TUNER_ID = "tuner0"


def advertised_host(settings: Settings) -> str:
    if settings.oracle_advertise:
        return settings.oracle_advertise
    if settings.oracle_bind in ("0.0.0.0", "::", ""):
        import socket

        return socket.getfqdn()
    return settings.oracle_bind


def release_leaked_lock(oracle: Any) -> None:
    """Give KerasTuner's per-oracle lock back if this thread still holds it: its
    @synchronized releases it only when the method returns, not when it raises (as
    end_trial does on too many failed trials in a row)."""
    from tuner_jobs.search.keras_tuner_compat import LOCKS, THREADS

    if THREADS[oracle] == threading.current_thread().name:
        THREADS[oracle] = None
        LOCKS[oracle].release()


class _LockSafeOracle:
    """The oracle as the gRPC servicer sees it: a call that raises gives the lock back,
    so one tuner's failing call cannot freeze tuner0 and every other tuner; and no call is
    served once `serving()` says no (the chief's lease may be another's: _LeaseFence)."""

    def __init__(self, oracle: Any, serving: Callable[[], bool] = lambda: True) -> None:
        self._oracle = oracle
        self._serving = serving

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._oracle, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._serving():
                raise LeaseLost("this chief's job lease ran out: it serves no tuner")
            try:
                return value(*args, **kwargs)
            except BaseException:
                release_leaked_lock(self._oracle)
                raise

        return call


class OracleServer:
    """KerasTuner's OracleServicer on a gRPC server with a free port."""

    def __init__(self, oracle: Any, bind: str, serving: Callable[[], bool] = lambda: True) -> None:
        import grpc

        from tuner_jobs.search.keras_tuner_compat import OracleServicer, protos

        self.servicer = OracleServicer(_LockSafeOracle(oracle, serving))
        # Oracle calls serialize on the oracle's lock; threads only let slow clients overlap.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"{bind}:0")
        if not self.port:
            raise RuntimeError(f"cannot listen for tuner workers on {bind}")

    def __enter__(self) -> OracleServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=1).wait(5)

    def close_now(self) -> None:
        """Stop listening and cancel the calls in flight: to its tuners, a dead chief."""
        self.server.stop(grace=None)

    @property
    def stop_triggered(self) -> bool:
        """The oracle has told some tuner that the search is over."""
        return bool(self.servicer.stop_triggered)


class _LeaseFence:
    """The chief's own reading of its job's lease: it serves the oracle, and writes to the
    job's directory, only while that lease is surely still its own.

    Its worker renews the lease, but a worker cut off from the database (or frozen) learns
    only after a blocked call that the lease ran out, and meanwhile another worker may have
    taken the job over and started a chief of its own: tuners must never be served by two
    chiefs, nor the shared project directory written by one that lost the job. So the chief
    reads the lease's end from the job's row every heartbeat, on a thread of its own, and
    compares it with its own clock (the one its worker wrote the lease with) at each oracle
    call, never waiting on the database. A reading at most two heartbeats old ends no later
    than the lease does: the fence may close that much early, after a database outage of
    nearly a lease (the job then resumes, as its worker would have given it up), never late.
    """

    def __init__(self, database: SearchDatabase, every_s: float) -> None:
        self._database = database
        self._claim = database.claim
        self._every_s = every_s
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._on_lost: list[Callable[[], None]] = []
        self._expires_at: datetime | None = None
        self._expires_at = self._read()
        self._thread = threading.Thread(target=self._run, name="chief-lease", daemon=True)

    def _read(self) -> datetime | None:
        # While the database is away the lease cannot be confirmed: from the last reading
        # on (none at the start, when the chief ends at once and the job resumes once the
        # lease runs out).
        return self._database.lease_expiry(while_away=self._expires_at)

    def _run(self) -> None:
        while not self._done.wait(self._every_s) and self.held():
            self._expires_at = self._read()

    def held(self) -> bool:
        expires_at = self._expires_at
        now = datetime.now(UTC)
        if not self._lost.is_set() and expires_at is not None and now < expires_at:
            return True
        with self._lock:
            if not self._lost.is_set():
                self._lost.set()
                logger.warning(
                    "chief fenced: its job lease ran out or is another's; it serves no tuner",
                    extra={"job_id": self._claim.job_id, "attempt": self._claim.attempt},
                )
                for callback in self._on_lost:
                    callback()
        return False

    def check(self) -> None:
        if not self.held():
            raise LeaseLost(f"job {self._claim.job_id}'s lease ran out under this chief")

    def on_lost(self, callback: Callable[[], None]) -> None:
        self._on_lost.append(callback)

    def __enter__(self) -> _LeaseFence:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


class _StopOrFenced:
    """tuner0's stop signal: its worker asks it to stop, or the chief's lease ran out."""

    def __init__(self, stop: SupervisedStop, fence: _LeaseFence) -> None:
        self._stop = stop
        self._fence = fence

    def is_set(self) -> bool:
        return self._stop.is_set() or not self._fence.held()

    def out_of_time(self) -> bool:
        return self._stop.out_of_time()


def run_chief(
    *,
    settings: Settings,
    job: SearchJob,
    spec: ResolvedSpec,
    database: SearchDatabase,
    recorder: TrialRecorder,
    stop: SupervisedStop,
    searched: Callable[[], None] = lambda: None,
) -> None:
    """Serve the oracle and run tuner0's trials until the search is over (raises
    SearchStopped when asked to stop). `searched` is called once tuner0 has no more
    trials to run: from then on this process only waits for the other tuners."""
    # tuner0 is a plain local tuner of the oracle the server shares with the others.
    os.environ["KERASTUNER_TUNER_ID"] = CHIEF_TUNER_ID
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        os.environ.pop(name, None)
    claim = database.claim
    with _LeaseFence(database, settings.heartbeat_s) as fence:
        try:
            _serve_and_search(
                settings=settings,
                job=job,
                spec=spec,
                database=database,
                recorder=recorder,
                stop=_StopOrFenced(stop, fence),
                searched=searched,
                fence=fence,
            )
        except SearchStopped:
            if not fence.held():  # it stopped because the lease ran out: not its job now
                raise LeaseLost(f"job {claim.job_id}'s lease ran out under this chief") from None
            raise


def _serve_and_search(
    *,
    settings: Settings,
    job: SearchJob,
    spec: ResolvedSpec,
    database: SearchDatabase,
    recorder: TrialRecorder,
    stop: SupervisedStop,
    searched: Callable[[], None],
    fence: _LeaseFence,
) -> None:
    # The best model and its card go to the shared directory only while the lease is ours.
    life = build_search(
        settings=settings,
        job=job,
        spec=spec,
        database=database,
        recorder=recorder,
        stop=stop,
        role=Role.CHIEF,
        guard=fence.check,
    )
    tuner = life.tuner
    oracle = tuner.oracle
    # What a resumed chief reloads: KerasTuner's chief saves before serving, too.
    tuner.save()

    with (
        life.finished_if_out_of_time(),
        OracleServer(oracle, settings.oracle_bind, fence.held) as server,
    ):
        fence.on_lost(server.close_now)
        address = f"{advertised_host(settings)}:{server.port}"
        if not database.open_slots(tuners=_tuners(spec, job), address=address):
            claim = database.claim
            raise LeaseLost(f"job {claim.job_id} is no longer held by {claim.worker_id}")
        logger.info("chief serving the oracle", extra={"job_id": job.id, "address": address})
        slots = _SlotKeeper(database, oracle, recorder, stopping=lambda: server.stop_triggered)
        with slots:
            search(tuner, life.data, spec, life.directory)
        # The oracle said STOPPED to tuner0: close the slots nobody needs, then let the
        # supervisor take over any slot whose trial is still owed (its tuner died).
        _tend_slots(database, oracle, recorder, stopping=True)
        searched()
        slots_checked = time.monotonic()
        while oracle.ongoing_trials:
            if stop.is_set():
                raise SearchStopped("the search was asked to stop")
            # Raises KerasTuner's own "consecutive failures" error: the job fails with it.
            check_consecutive_failures(oracle)
            life.keep_best()
            if time.monotonic() - slots_checked > SLOTS_EVERY_S:
                slots_checked = time.monotonic()
                _tend_slots(database, oracle, recorder, stopping=True)
            time.sleep(POLL_S)
    with claim_held():
        _record_unreported(oracle, recorder)
    life.end()


def _tuners(spec: ResolvedSpec, job: SearchJob) -> int:
    """Tuners the chief opens slots for: the number asked, or for "auto" as many as the
    search has trials (each idle worker may take one; app.store.slot_queue)."""
    if spec.parallel_trials == "auto":
        return min(spec.max_tuners, max(1, job.trials_planned))
    return spec.parallel_trials


def _record_unreported(oracle: Any, recorder: TrialRecorder) -> None:
    """A tuner killed after telling the oracle that its trial ended, but before writing
    that down, leaves the trial RUNNING in the database: the oracle knows how it ended."""
    from tuner_jobs.search.optuna_oracle import objectives_of
    from tuner_jobs.search.tuners import trial_best_epoch

    for trial_id in recorder.unreported_trials():
        trial = oracle.trials.get(trial_id)
        if trial is None or trial.status in ("RUNNING", "IDLE"):
            continue
        recorder.trial_ended_elsewhere(
            trial_id,
            status=trial.status,
            score=trial.score,
            best_epoch=trial_best_epoch(trial),
            objectives=objectives_of(oracle, trial),
        )


class _SlotKeeper:
    """While tuner0 trains on the main thread, look after the slots every SLOTS_EVERY_S
    (a thread: a trial takes longer than a slot may wait)."""

    def __init__(
        self,
        database: SearchDatabase,
        oracle: Any,
        recorder: TrialRecorder,
        stopping: Callable[[], bool],
    ) -> None:
        self._args = (database, oracle, recorder)
        self._stopping = stopping
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chief-slots", daemon=True)

    def _run(self) -> None:
        while not self._done.wait(SLOTS_EVERY_S):
            try:
                _tend_slots(*self._args, stopping=self._stopping())
            except Exception:  # the database is away, say: try again next round
                logger.warning("could not tend the slots", exc_info=True)

    def __enter__(self) -> _SlotKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _tend_slots(
    database: SearchDatabase, oracle: Any, recorder: TrialRecorder, stopping: bool
) -> None:
    """Close slots the search no longer needs; fail the trial of a slot that died for good.
    A database away longer than the lease is the lease lost (LeaseLost), as for a write."""
    with claim_held():
        slots = database.tuner_slots()
    ongoing = dict(oracle.ongoing_trials)
    for slot in slots:
        trial = ongoing.get(slot.tuner_id)
        if slot.failed and trial is not None:
            _abandon(oracle, trial, slot.error or "its tuner worker died", recorder)
    if stopping:
        with claim_held():
            database.close_slots([slot.slot for slot in slots if slot.tuner_id not in ongoing])


def _abandon(oracle: Any, trial: Any, reason: str, recorder: TrialRecorder) -> None:
    """End a trial whose tuner died on every attempt as FAILED, so the search goes on."""
    from keras_tuner.engine import trial as trial_module

    ended = trial_module.Trial(
        hyperparameters=trial.hyperparameters.copy(),
        trial_id=trial.trial_id,
        status=trial_module.TrialStatus.FAILED,
        message=reason,
    )
    try:
        oracle.end_trial(ended)
    finally:
        release_leaked_lock(oracle)  # it raises when too many trials failed in a row
    recorder.trial_abandoned(trial.trial_id, reason)
    logger.warning("trial abandoned", extra={"trial_id": trial.trial_id, "reason": reason})
