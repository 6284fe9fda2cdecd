"""One search's life cycle: what happens after each trial and at the end of the search,
the same in a one-process search (runner.run_search) and in a parallel job's chief
(chief.run_chief), the two processes that finish a job. A tuner worker of a parallel job
only hands its process over when it has run enough trials; the chief keeps the model.

After each trial: the best model exported when a new trial leads (whichever tuner ran
it), the Pareto front's models kept, stale checkpoints dropped, and the search handed to
a fresh process when this one has run enough trials or grown (a chief only while no
other tuner takes part: its process is the oracle's home). At the end: the outcome
judged (every trial failed: the job fails), the best model kept, then refit, baselines,
test score, ensemble and model card (evaluation.evaluate_and_record). The baselines need no
search result: they are scored on a thread from the search's start, and the end collects them.

The time budget. The supervisor decides, once, from the job's deadline (the search's part
of max_runtime_s) that the search must stop, and says why as it asks (SupervisedStop:
out_of_time). The finishing process then ends as a search that ran its planned trials does
before it reports STOPPED: the job succeeds with stop_reason time_budget
(tuner_jobs.worker.outcomes) and serves the same kind of model. That end runs in the share
of the budget kept for it (ResolvedSpec.search_seconds), and within the supervisor's stop grace
(tuner_jobs.worker.processes.STOP_GRACE_S).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.search.spec import ResolvedSpec
from app.settings import Settings
from app.store.job_files import BEST_MODEL_FILE
from app.store.search_values import SearchJob
from tuner_jobs.search.best_model import best_completed_trial, export_best_model, prune_checkpoints
from tuner_jobs.search.child import Role
from tuner_jobs.search.data import TrainingData
from tuner_jobs.search.evaluation import BaselinesBeside, evaluate_and_record
from tuner_jobs.search.front_models import keep_front_models
from tuner_jobs.search.model_export import exported_trial, exported_whole
from tuner_jobs.search.optuna_oracle import front_trial_ids
from tuner_jobs.search.recorder import claim_held
from tuner_jobs.search.recycling import count_trial, recycle_reason, resident_mb
from tuner_jobs.search.tuners import (
    RecordingTuner,
    RecycleProcess,
    SearchStopped,
    SupervisedStop,
)

if TYPE_CHECKING:
    from app.store.search_gateway import SearchDatabase

logger = logging.getLogger(__name__)


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


class BestModelKeeper:
    """Exports the best model when a new trial leads, whichever tuner ran it, and drops
    checkpoints nobody needs. Runs on the finishing process's main thread only: between its
    own trials, then (a chief) while the last trials of the other tuners finish."""

    def __init__(self, preprocessor: Any, path: Path) -> None:
        self.preprocessor = preprocessor
        self.path = path
        # A resumed (or recycled) search need not export again the model the last one did.
        self.exported: str | None = exported_trial(path)
        self.whole = exported_whole(path)
        self.ended = -1

    def keep(self, tuner: Any, *, final: bool = False) -> None:
        """Export and prune if a trial ended since the last look. While the search goes on
        a new leader is exported as `.keras` only; `final`: the search is over, and the
        model that stays is exported in every format."""
        oracle = tuner.oracle
        if len(oracle.end_order) == self.ended and not (final and not self.whole):
            return
        with oracle_lock(oracle) as locked:
            if not locked:
                return  # a stuck lock: the next look tries again
            self.ended = len(oracle.end_order)
            best = best_completed_trial(oracle)
            front = front_trial_ids(oracle)  # a multi-objective job's Pareto front
            prune_checkpoints(tuner)  # keeps the best trial's checkpoint, and the front's
        # The export reads only that checkpoint and the trial's hyperparameters, so it runs
        # without the oracle's lock: the other tuners' calls (ending a trial, asking for the
        # next) need not wait for it. Only this thread prunes, so the checkpoint stays
        # until the export is done.
        if best is not None and (best.trial_id != self.exported or (final and not self.whole)):
            self.exported = export_best_model(
                tuner, self.preprocessor, self.path, best, interim=not final
            )
            self.whole = final and self.exported is not None
        keep_front_models(tuner, self.preprocessor, self.path.parent, front)


class SearchLifeCycle:
    """`role`: the process's part in its job (child.Role). `guard`: called before the end
    writes to the job's directory (a chief's check that its lease is still its own)."""

    def __init__(
        self,
        *,
        role: Role,
        tuner: RecordingTuner,
        data: TrainingData,
        spec: ResolvedSpec,
        job: SearchJob,
        database: SearchDatabase,
        settings: Settings,
        stop: SupervisedStop,
        guard: Callable[[], None] = lambda: None,
    ) -> None:
        self.role = role
        self.tuner = tuner
        self.data = data
        self.spec = spec
        self.job = job
        self.database = database
        self.settings = settings
        self.stop = stop
        self.guard = guard
        self.directory = Path(tuner.directory)  # type: ignore[attr-defined]
        self.keeper = (
            None
            if role is Role.TUNER
            else BestModelKeeper(data.preprocessor, self.directory / BEST_MODEL_FILE)
        )
        self._trials_here = 0
        # Started with the search, collected by its end phase (the process that finishes).
        self.baselines = None if self.keeper is None else BaselinesBeside(data, spec, job.dataset)

    @property
    def finishes(self) -> bool:
        """Whether this process ends the job's search (a tuner worker's chief does)."""
        return self.keeper is not None

    def after_trial(self, tuner: Any, trial_id: str) -> None:
        self.keep_best()
        self._trials_here += 1
        rss = resident_mb()
        reason = recycle_reason(count_trial(), rss, self.settings)
        if reason is None or self._plan_started() or not self._may_recycle():
            return
        logger.info(
            "recycling the search process",
            extra={
                "job_id": self.job.id,
                "role": str(self.role),
                "trials_here": self._trials_here,
                "rss_mb": round(rss),
                "reason": reason,
            },
        )
        raise RecycleProcess(reason)

    def _plan_started(self) -> bool:
        """Every trial the job plans has started here (a chief's or one process's oracle):
        a fresh process would import TensorFlow and reload the search only to end it."""
        if self.role is Role.TUNER:
            return False  # its oracle is the chief's, over the network
        started = len(self.tuner.oracle.trials)  # type: ignore[attr-defined]
        return started >= self.job.trials_planned

    def _may_recycle(self) -> bool:
        """A chief hands over only while no other tuner takes part: a fresh chief replaces
        the job's slots (app.store.slot_queue.open_slots). With tuners attached it goes on."""
        if self.role is not Role.CHIEF:
            return True
        if self.tuner.oracle.ongoing_trials:  # type: ignore[attr-defined]
            return False
        with claim_held():
            return not self.database.slots_running()

    def keep_best(self) -> None:
        if self.keeper is not None:
            with claim_held():  # the card's read waits out an outage, up to the lease
                self.keeper.keep(self.tuner)

    def completed_trials(self) -> int:
        """The search's completed trials, as its oracle (told before the database) knows."""
        trials = self.tuner.oracle.trials.values()  # type: ignore[attr-defined]
        return sum(t.status == "COMPLETED" for t in trials)

    def check_outcome(self) -> None:
        """Raise when every trial failed: the job fails with the last trial's error."""
        trials = list(self.tuner.oracle.trials.values())  # type: ignore[attr-defined]
        if trials and not self.completed_trials():
            last = [t.message for t in trials if t.message][-1:] or ["no trial completed"]
            raise RuntimeError(
                f"every trial failed; the last error: {last[0].strip().splitlines()[-1]}"
            )

    def end(self) -> None:
        """The search ran its trials: its outcome judged, then finished."""
        self.check_outcome()
        self.finish()

    def finish(self) -> None:
        """The best model kept (a resumed search's best trial may have ended before the
        interruption), then refit, baselines, test score, ensemble and card."""
        with claim_held():  # the card's reads and the end's write wait out an outage
            self._finish()

    def _finish(self) -> None:
        self.guard()  # the best model and its card go to the shared directory
        keeper = self.keeper
        # Exported in every format once, as the model that stays: a cross-validated job's
        # is the refit on every row, which evaluation exports itself.
        refits = getattr(self.tuner, "folds", None) is not None
        if keeper is not None:
            keeper.keep(self.tuner, final=not refits)
        evaluate_and_record(
            self.tuner, self.data, self.spec, self.job.dataset, self.database, self.baselines
        )
        if keeper is not None and refits and not exported_whole(keeper.path):
            keeper.keep(self.tuner, final=True)  # no refit: the best fold's model stays

    @contextmanager
    def finished_if_out_of_time(self) -> Iterator[None]:
        """Run the block; when it stops (SearchStopped) because the budget ran out and a
        trial completed, finish the search (this process finishes the job), then let
        SearchStopped go on."""
        try:
            yield
        except SearchStopped:
            if self.finishes and self.completed_trials() and self.stop.out_of_time():
                logger.info(
                    "time budget spent: finishing the search", extra={"job_id": self.job.id}
                )
                try:
                    self.finish()
                except Exception:  # the job still succeeds, with its best trial's model
                    logger.warning("finishing after the time budget failed", exc_info=True)
            raise
