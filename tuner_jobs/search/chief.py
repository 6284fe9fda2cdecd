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
- it exports the best model and prunes checkpoints as trials end, as a one-process
  search does after each trial.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.search.spec import ResolvedSpec
from app.settings import Settings
from app.store.db import write_session
from app.store.job_files import BEST_MODEL_FILE
from app.store.models import Dataset, Job, JobSlot, SlotStatus, utcnow
from app.store.queue import Claim, lease_expiry
from app.store.slot_queue import close_slots, job_slots, open_slots, slots_running
from tuner_jobs.search.keras_tuner_compat import check_consecutive_failures
from tuner_jobs.search.recorder import LeaseLost, TrialRecorder
from tuner_jobs.search.recycling import recycle_reason, resident_mb
from tuner_jobs.search.tuners import RecycleProcess, SearchStopped, StopSignal

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


@contextmanager
def oracle_lock(oracle: Any, timeout: float = 10.0) -> Iterator[bool]:
    """KerasTuner's own per-oracle lock (the one @synchronized takes), with a timeout:
    an oracle method that raised leaves it held, and the chief must not hang on it."""
    from tuner_jobs.search.keras_tuner_compat import LOCKS, THREADS

    acquired = LOCKS[oracle].acquire(timeout=timeout)
    if not acquired:
        yield False
        return
    THREADS[oracle] = threading.current_thread().name
    try:
        yield True
    finally:
        THREADS[oracle] = None
        LOCKS[oracle].release()


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

    def __init__(self, engine: Engine, claim: Claim, every_s: float) -> None:
        self._engine = engine
        self._claim = claim
        self._every_s = every_s
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._on_lost: list[Callable[[], None]] = []
        self._expires_at: datetime | None = None
        self._expires_at = self._read()
        self._thread = threading.Thread(target=self._run, name="chief-lease", daemon=True)

    def _read(self) -> datetime | None:
        try:
            with Session(self._engine) as session:
                return lease_expiry(session=session, claim=self._claim)
        except DBAPIError:
            # The lease cannot be confirmed: from the last reading on (none at the start,
            # when the chief ends at once and the job resumes once the lease runs out).
            return self._expires_at

    def _run(self) -> None:
        while not self._done.wait(self._every_s) and self.held():
            self._expires_at = self._read()

    def held(self) -> bool:
        expires_at = self._expires_at
        if not self._lost.is_set() and expires_at is not None and utcnow() < expires_at:
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

    def __init__(self, stop: StopSignal, fence: _LeaseFence) -> None:
        self._stop = stop
        self._fence = fence

    def is_set(self) -> bool:
        return self._stop.is_set() or not self._fence.held()


def run_chief(
    *,
    settings: Settings,
    engine: Engine,
    claim: Claim,
    job: Job,
    spec: ResolvedSpec,
    dataset: Dataset,
    recorder: TrialRecorder,
    stop: StopSignal,
    searched: Callable[[], None] = lambda: None,
) -> None:
    """Serve the oracle and run tuner0's trials until the search is over (raises
    SearchStopped when asked to stop). `searched` is called once tuner0 has no more
    trials to run: from then on this process only waits for the other tuners."""
    # tuner0 is a plain local tuner of the oracle the server shares with the others.
    os.environ["KERASTUNER_TUNER_ID"] = CHIEF_TUNER_ID
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        os.environ.pop(name, None)
    with _LeaseFence(engine, claim, settings.heartbeat_s) as fence:
        try:
            _serve_and_search(
                settings=settings,
                engine=engine,
                claim=claim,
                job=job,
                spec=spec,
                dataset=dataset,
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
    engine: Engine,
    claim: Claim,
    job: Job,
    spec: ResolvedSpec,
    dataset: Dataset,
    recorder: TrialRecorder,
    stop: StopSignal,
    searched: Callable[[], None],
    fence: _LeaseFence,
) -> None:
    from tuner_jobs.search.evaluation import evaluate_and_record
    from tuner_jobs.search.runner import build_search, check_outcome, search
    from tuner_jobs.search.time_budget import finished_if_out_of_time

    tuner, data, directory = build_search(
        settings=settings, job=job, spec=spec, dataset=dataset, recorder=recorder, stop=stop
    )
    oracle = tuner.oracle
    best_model = directory / BEST_MODEL_FILE
    keeper = _BestKeeper(data.preprocessor, best_model)
    tuner.after_trial = _after_trial(keeper, settings, engine, claim)
    # What a resumed chief reloads: KerasTuner's chief saves before serving, too.
    tuner.save()

    def finish() -> None:
        fence.check()  # the best model and its card go to the shared directory
        keeper.keep(tuner)
        evaluate_and_record(tuner, data, spec, dataset, recorder)

    with (
        finished_if_out_of_time(engine, job.id, tuner, finish),
        OracleServer(oracle, settings.oracle_bind, fence.held) as server,
    ):
        fence.on_lost(server.close_now)
        address = f"{advertised_host(settings)}:{server.port}"
        with write_session(engine) as session:
            if not open_slots(
                session=session, claim=claim, tuners=_tuners(spec, job), address=address
            ):
                raise LeaseLost(f"job {claim.job_id} is no longer held by {claim.worker_id}")
        logger.info("chief serving the oracle", extra={"job_id": job.id, "address": address})
        slots = _SlotKeeper(engine, claim, oracle, recorder, stopping=lambda: server.stop_triggered)
        with slots:
            search(tuner, data, spec, directory)
        # The oracle said STOPPED to tuner0: close the slots nobody needs, then let the
        # supervisor take over any slot whose trial is still owed (its tuner died).
        _tend_slots(engine, claim, oracle, recorder, stopping=True)
        searched()
        slots_checked = time.monotonic()
        while oracle.ongoing_trials:
            if stop.is_set():
                raise SearchStopped("the search was asked to stop")
            # Raises KerasTuner's own "consecutive failures" error: the job fails with it.
            check_consecutive_failures(oracle)
            keeper.keep(tuner)
            if time.monotonic() - slots_checked > SLOTS_EVERY_S:
                slots_checked = time.monotonic()
                _tend_slots(engine, claim, oracle, recorder, stopping=True)
            time.sleep(POLL_S)
    _record_unreported(oracle, recorder)
    check_outcome(tuner)
    finish()


def _tuners(spec: ResolvedSpec, job: Job) -> int:
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


def _after_trial(keeper: _BestKeeper, settings: Settings, engine: Engine, claim: Claim):  # type: ignore[no-untyped-def]
    """After each of tuner0's trials: keep the best model, and hand the search to a fresh
    process when this one has run enough trials or grown (as a one-process search does),
    but only while no other tuner takes part: this process is the oracle's home, and a
    fresh chief replaces the job's slots (open_slots). With tuners attached it goes on."""
    trials_here = 0

    def after_trial(tuner: Any, trial_id: str) -> None:
        nonlocal trials_here
        keeper.after_trial(tuner, trial_id)
        trials_here += 1
        reason = recycle_reason(trials_here, resident_mb(), settings)
        if reason is None or tuner.oracle.ongoing_trials:
            return
        with Session(engine) as session:
            if slots_running(session=session, job_id=claim.job_id):
                return
        logger.info("recycling the chief", extra={"job_id": claim.job_id, "reason": reason})
        raise RecycleProcess(reason)

    return after_trial


class _BestKeeper:
    """Exports the best model when a new trial leads, whichever tuner ran it, and
    drops checkpoints nobody needs. Runs on the chief's main thread only: between
    tuner0's trials, then while the last trials of the other tuners finish."""

    def __init__(self, preprocessor: Any, path: Path) -> None:
        from tuner_jobs.search.model_export import exported_trial

        self.preprocessor = preprocessor
        self.path = path
        # A resumed (or recycled) chief need not export again the model the last one did.
        self.exported: str | None = exported_trial(path)
        self.ended = -1

    def after_trial(self, tuner: Any, _trial_id: str) -> None:
        self.keep(tuner)

    def keep(self, tuner: Any) -> None:
        """Export and prune if a trial ended since the last look."""
        from tuner_jobs.search.best_model import (
            best_completed_trial,
            export_best_model,
            prune_checkpoints,
        )
        from tuner_jobs.search.front_models import keep_front_models
        from tuner_jobs.search.optuna_oracle import front_trial_ids

        oracle = tuner.oracle
        if len(oracle.end_order) == self.ended:
            return
        with oracle_lock(oracle) as locked:
            if not locked:
                return  # a stuck lock: the next look tries again
            self.ended = len(oracle.end_order)
            best = best_completed_trial(oracle)
            front = front_trial_ids(oracle)  # a multi-objective job's Pareto front
            prune_checkpoints(tuner)  # keeps the best trial's checkpoint, and the front's
        # The export reads only that checkpoint and the trial's
        # hyperparameters, so it runs without the oracle's lock: the other tuners' calls
        # (ending a trial, asking for the next) need not wait for it. Only this thread
        # prunes, so the checkpoint stays until the export is done.
        if best is not None and best.trial_id != self.exported:
            self.exported = export_best_model(tuner, self.preprocessor, self.path, best)
        keep_front_models(tuner, self.preprocessor, self.path.parent, front)


class _SlotKeeper:
    """While tuner0 trains on the main thread, look after the slots every SLOTS_EVERY_S
    (a thread: a trial takes longer than a slot may wait)."""

    def __init__(
        self,
        engine: Engine,
        claim: Claim,
        oracle: Any,
        recorder: TrialRecorder,
        stopping: Callable[[], bool],
    ) -> None:
        self._args = (engine, claim, oracle, recorder)
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
    engine: Engine, claim: Claim, oracle: Any, recorder: TrialRecorder, stopping: bool
) -> None:
    """Close slots the search no longer needs; fail the trial of a slot that died for good."""
    with Session(engine) as session:
        slots: list[JobSlot] = job_slots(
            session=session, job_id=claim.job_id, chief_attempt=claim.attempt
        )
    ongoing = dict(oracle.ongoing_trials)
    for slot in slots:
        trial = ongoing.get(slot.tuner_id)
        if slot.status == SlotStatus.FAILED and trial is not None:
            _abandon(oracle, trial, slot.error or "its tuner worker died", recorder)
    if stopping:
        idle = [slot.slot for slot in slots if slot.tuner_id not in ongoing]
        with write_session(engine) as session:
            close_slots(session=session, claim=claim, slots=idle)


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
