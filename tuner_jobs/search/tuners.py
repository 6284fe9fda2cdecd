"""KerasTuner tuners that report every trial and epoch to SQL through KerasTuner's own hooks."""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import keras
import keras_tuner as kt
from keras_tuner.engine import trial as trial_module

from tuner_jobs.search.cross_validation import CrossValidated
from tuner_jobs.search.hyperparameters import active_values
from tuner_jobs.search.model_reuse import ModelCache
from tuner_jobs.search.optuna_search import OptunaSearch
from tuner_jobs.search.padded import (
    PADDING_FILE,
    PaddingChoice,
    choose_padding,
    hyperband_epochs_per_network,
)
from tuner_jobs.search.pruning import MedianPruner
from tuner_jobs.search.recorder import TrialRecorder, finite
from tuner_jobs.search.warm_start import warm_start_origin

logger = logging.getLogger(__name__)

# How long a tuner waits before asking again after the oracle answered IDLE.
IDLE_WAIT_S = 0.5


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


class SupervisedStop(StopSignal, Protocol):
    """A search process's stop signal as its supervisor sets it, with why."""

    def out_of_time(self) -> bool:
        """The supervisor asked the search to stop because its time budget ran out (the
        decision is the supervisor's, once, from the job's deadline)."""
        ...


class SearchStopped(kt.errors.FatalError):
    """Raised at an epoch boundary when the supervisor asks the search to stop."""


class RecycleProcess(kt.errors.FatalError):
    """Raised between trials when this process should hand the search to a fresh one."""


class RecordingTuner(CrossValidated):
    """Mixin for a KerasTuner tuner: on_trial_begin / on_epoch_end / on_trial_end hooks.

    KerasTuner keeps no per-epoch history; these hooks (called by its TunerCallback,
    which runs after the user's callbacks) write each epoch as it ends.
    """

    def __init__(
        self,
        *args: Any,
        recorder: TrialRecorder,
        stop: StopSignal,
        after_trial: Callable[[Any, str], None] | None = None,
        pruner: MedianPruner | None = None,
        epochs: int | None = None,
        model_cache: ModelCache | None = None,
        rng_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.recorder = recorder
        # The job's seed; each trial's randomness is drawn from it and the trial's id alone
        # (trial_rng_seed), None: from wherever the process's generators stand.
        self.rng_seed = rng_seed
        self.model_cache = model_cache  # None: KerasTuner builds every trial's model
        self.stop = stop
        self.after_trial = after_trial
        self.pruner = pruner
        self.epochs = epochs  # training.epochs: a trial stopped at its last one is not pruned
        self._pruned: dict[str, bool] = {}
        self._started: dict[str, float] = {}
        self._stopped_early: dict[str, bool] = {}
        self._epoch_lr: dict[str, float] = {}
        self._asked_for_trial = False
        self._padding_planned = False
        # What the padding's cost is estimated from, the same in every process of a job (a
        # parallel job's tuners hold a client of the chief's oracle, which keeps these).
        given = kwargs.get("oracle")  # Optuna's tuners make their oracle themselves
        self._space = kwargs.get("hyperparameters") or getattr(given, "hyperparameters", None)
        self._schedule = (kwargs.get("max_epochs"), kwargs.get("factor", 3))
        # A tuner on a lent slot (parallel_trials "auto"): why to hand it back before the
        # next trial, or None (tuner_jobs.search.runner.run_search sets it).
        self.hand_back: Callable[[], str | None] | None = None
        # What the model card needs (tuner_jobs.search.model_card.CardContext), read by
        # best_model.export_best_model; runner.build_search sets it.
        self.export_context: Any = None
        super().__init__(*args, **kwargs)

    def _try_build(self, hp: kt.HyperParameters) -> keras.Model:
        """KerasTuner's one place that builds a trial's model (every fit, every fold,
        `load_model`): from tuner_jobs.search.model_reuse's cache when one is set."""
        if self.model_cache is None or self.max_model_size:  # type: ignore[attr-defined]
            return super()._try_build(hp)  # type: ignore[misc]
        return self.model_cache.model_for(self, hp)

    def load_model(self, trial: kt.engine.trial.Trial) -> keras.Model:
        """A trial's model at its best epoch (the best model's export, the held-out score,
        the Pareto front's models, the ensemble's members). KerasTuner's own load_model
        builds a Hyperband trial that continued another as its run began, with the parent's
        checkpoint loaded, then loads the trial's own over it: the parent's file is read for
        nothing, and it may be gone (best_model.prune_checkpoints keeps a parent only while
        its continuation runs). Here the model is built as a fresh trial's, then given its
        own weights; a padded network is handed out at its real widths."""
        hp = trial.hyperparameters.copy()
        hp.values.pop("tuner/trial_id", None)
        self._plan_padding()
        model = self._try_build(hp)
        model.load_weights(self._get_checkpoint_fname(trial.trial_id))  # type: ignore[attr-defined]
        if self.model_cache is None:
            return model
        return self.model_cache.handed_out(self, model, hp)

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        self._plan_padding(fit_args, fit_kwargs)
        super().search(*fit_args, **fit_kwargs)  # type: ignore[misc]

    def _plan_padding(
        self, fit_args: tuple[Any, ...] = (), fit_kwargs: dict[str, Any] | None = None
    ) -> None:
        """Decide once per job whether its networks are padded (tuner_jobs.search.padded),
        from the rows and epochs `search` is given; the choice is kept in the project
        directory, so every process of the job (a resumed or recycled search, a parallel
        job's tuners, an export) builds networks of the shape its checkpoints have."""
        if self._padding_planned or self.max_model_size:  # type: ignore[attr-defined]
            return
        if not hasattr(self.hypermodel, "build_padded"):  # type: ignore[attr-defined]
            return
        path = Path(self.project_dir) / PADDING_FILE  # type: ignore[attr-defined]
        choice = PaddingChoice.load(path)
        if choice is None:
            cache = self.model_cache
            if fit_kwargs is None or cache is None or not cache.may_pad:
                return  # KerasTuner's own build, or (not searching) unpadded checkpoints
            choice = self._choose_padding(path, fit_args, fit_kwargs)
            choice.save(path)
        if choice.widths is not None and self.model_cache is None:
            # The job's checkpoints are padded (model reuse was turned off since it began):
            # its networks must have their shape.
            self.model_cache = ModelCache()
        self._padding_planned = True
        if self.model_cache is not None:
            self.model_cache.pad(choice.widths)
        logger.info(
            "networks %s: %s",
            "padded to the space's widest" if choice.widths else "of their real widths",
            choice.reason,
            extra={
                "padded_widths": list(choice.widths or []),
                "extra_s": round(choice.extra_s, 3),
                "saved_s": round(choice.saved_s, 3),
            },
        )

    def _choose_padding(
        self, path: Path, fit_args: tuple[Any, ...], fit_kwargs: dict[str, Any]
    ) -> PaddingChoice:
        if any(path.parent.glob("trial_*/checkpoint*")):
            # A project a version without padding began: its checkpoints are unpadded.
            return PaddingChoice(None, 0.0, 0.0, "the search's checkpoints are unpadded")
        if getattr(self, "_measured", None):
            # An objective measures the trained network itself (its parameters, its
            # latency: tuner_jobs.search.optuna_search): it must be the real widths'.
            return PaddingChoice(None, 0.0, 0.0, "an objective measures the network's size")
        x = fit_args[0] if fit_args else fit_kwargs.get("x")
        validation = fit_kwargs.get("validation_data")
        if self.folds is None and not hasattr(x, "__len__"):
            return PaddingChoice(None, 0.0, 0.0, "the rows are not counted (not an array)")
        if self.folds is not None:
            parts = self.folds.parts
            train = sum(len(fit) for fit, _ in parts)
            held = sum(len(rows) for _, rows in parts)
        else:
            train = len(x) * self.executions_per_trial  # type: ignore[arg-type,attr-defined]
            held = len(validation[0]) * self.executions_per_trial if validation else 0  # type: ignore[attr-defined]
        epochs = int(fit_kwargs.get("epochs") or self.epochs or 1)
        max_epochs, factor = self._schedule
        if max_epochs:  # Hyperband: most configurations train a few epochs
            epochs_per_network = hyperband_epochs_per_network(int(max_epochs), int(factor))
        else:
            epochs_per_network = float(epochs)
        if self._space is None:
            return PaddingChoice(None, 0.0, 0.0, "the search space is not known here")
        hypermodel = self.hypermodel  # type: ignore[attr-defined]
        return choose_padding(
            self._space,
            input_width=hypermodel.input_width,
            outputs=hypermodel.head.units,
            training_rows=train,
            validation_rows=held,
            epochs=epochs_per_network,
        )

    def pre_create_trial(self) -> None:
        """Before asking the oracle for a trial: stop if asked, and wait a little if the
        last answer was IDLE (no trial began since). In a parallel job Hyperband's
        oracle answers IDLE while a bracket waits for other tuners' trials, and
        KerasTuner asks again at once, in a loop that would take a core."""
        super().pre_create_trial()  # type: ignore[misc]
        if self.stop.is_set():
            raise SearchStopped("the search was asked to stop")
        if self.hand_back is not None and (reason := self.hand_back()) is not None:
            raise RecycleProcess(reason)  # between trials: nothing is lost
        if self._asked_for_trial:
            time.sleep(IDLE_WAIT_S)
        self._asked_for_trial = True

    def on_trial_begin(self, trial: kt.engine.trial.Trial) -> None:
        if self.rng_seed is not None:
            # Initial weights, shuffling and dropout draw from the global generators, which
            # a process seeds once: without this, a trial's weights would depend on what
            # the process ran before it (its earlier trials, exports), so a search resumed
            # or recycled into a fresh process, or run on another slot, would train its
            # remaining trials from other weights than the same search run straight
            # through. The oracles draw configurations from their own seeded state.
            keras.utils.set_random_seed(trial_rng_seed(self.rng_seed, trial.trial_id))
        super().on_trial_begin(trial)  # type: ignore[misc]
        self._asked_for_trial = False
        self._started[trial.trial_id] = time.monotonic()
        self._stopped_early[trial.trial_id] = False
        self._pruned[trial.trial_id] = False
        self.recorder.trial_started(
            trial.trial_id,
            active_values(trial.hyperparameters),
            origin_job_id=warm_start_origin(trial.hyperparameters.values),
        )
        if self.pruner is not None:
            self.pruner.trial_began(trial.trial_id)

    def on_epoch_begin(self, trial, model: keras.Model, epoch: int, logs=None) -> None:  # type: ignore[no-untyped-def]
        super().on_epoch_begin(trial, model, epoch, logs)  # type: ignore[misc]
        # The rate this epoch trains with; ReduceLROnPlateau may lower it at the epoch's end.
        self._epoch_lr[trial.trial_id] = _learning_rate(model)

    def on_epoch_end(self, trial, model: keras.Model, epoch: int, logs=None) -> None:  # type: ignore[no-untyped-def]
        super().on_epoch_end(trial, model, epoch, logs)  # type: ignore[misc]
        # With cross-validation, the curve stored is the mean over the folds so far.
        logs = self.mean_over_folds(trial.trial_id, epoch, dict(logs or {}))
        # EarlyStopping ran just before this hook in the same epoch; if it asked
        # training to stop, this trial ends early. (TerminateOnNaN also stops
        # training, mid-epoch, leaving a non-finite loss: that is divergence.)
        if model.stop_training and math.isfinite(float(logs.get("loss", 0.0))):
            self._stopped_early[trial.trial_id] = True
        learning_rate = self._epoch_lr.pop(trial.trial_id, None) or _learning_rate(model)
        self.recorder.epoch_ended(trial.trial_id, epoch, logs, learning_rate)
        if self.stop.is_set():
            raise SearchStopped("the search was asked to stop")
        self._prune(trial, model, epoch, logs)

    def folds_ended(self, trial_id: str, fold_scores: list[float | None]) -> None:
        # Stored as the running trial's progress: between folds, its curve's epochs are
        # rewritten (as means) rather than added.
        self.recorder.folds_ended(trial_id, fold_scores)

    def _prune(self, trial, model: keras.Model, epoch: int, logs: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
        """Stop a trial below the completed trials' median (tuner_jobs.search.pruning). This
        hook runs inside KerasTuner's own Keras callback (TunerCallback), after the user's:
        setting stop_training there ends the fit after this epoch, and the oracle then
        ends the trial COMPLETED with the best score it reached."""
        if self.pruner is None or model.stop_training or not self.pruner_judges():
            return  # off, already stopping (EarlyStopping, NaN), or a fold it does not judge
        value = finite(logs.get(self.pruner.objective))
        if not self.pruner.should_stop(trial.trial_id, epoch, value):
            return
        # Hyperband's trials train to their bracket's tuner/epochs, not training.epochs.
        last = int(trial.hyperparameters.values.get("tuner/epochs", self.epochs or 0))
        if epoch + 1 >= last:
            return  # its last epoch anyway: nothing is saved by stopping it
        model.stop_training = True
        self._pruned[trial.trial_id] = True

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        try:
            # The oracle scores the trial and saves its state; it raises when too
            # many trials failed in a row, after it has recorded this one's status.
            super().on_trial_end(trial)  # type: ignore[misc]
        finally:
            done = self.oracle.get_trial(trial.trial_id)  # type: ignore[attr-defined]
            self.recorder.trial_ended(
                trial.trial_id,
                status=done.status,
                score=done.score,
                best_epoch=trial_best_epoch(done),
                stopped_early=self._stopped_early.pop(trial.trial_id, False),
                message=_last_line(done.message) or _diverged(done),
                duration_s=time.monotonic() - self._started.pop(trial.trial_id),
                pruned=self._pruned.pop(trial.trial_id, False),
                objectives=self.trial_objectives(done),
                fold_scores=self.fold_scores(trial.trial_id),
            )
            if self.pruner is not None:
                self.pruner.trial_ended(trial.trial_id)
        if self.after_trial is not None:
            self.after_trial(self, trial.trial_id)

    def trial_objectives(self, trial: Any) -> dict[str, float | None] | None:
        """Each objective's value of an ended trial, for a multi-objective job (None here;
        Optuna's tuners, tuner_jobs.search.optuna_search, name them)."""
        return None

    def record_interrupted(self, status: str = trial_module.TrialStatus.STOPPED) -> None:
        """Close the trial that was running when the search stopped."""
        for trial_id, started in list(self._started.items()):
            self.recorder.trial_ended(
                trial_id,
                status=status,
                score=None,
                best_epoch=None,
                stopped_early=False,
                message="the search stopped during this trial",
                duration_s=time.monotonic() - started,
            )
            self._started.pop(trial_id)
            self._pruned.pop(trial_id, None)


def trial_rng_seed(seed: int, trial_id: str) -> int:
    """A trial's seed, the same in every process (crc32: Python's hash() of a str is
    salted per process)."""
    return zlib.crc32(f"{seed}:{trial_id}".encode()) & 0x7FFFFFFF


def _learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def trial_best_epoch(trial: Any) -> int | None:
    """KerasTuner counts the best step from the start of the trial's own fit; a Hyperband
    trial that continues a parent starts at tuner/initial_epoch. Store the epoch number."""
    if trial.best_step is None:
        return None
    return int(trial.hyperparameters.values.get("tuner/initial_epoch", 0)) + int(trial.best_step)


def _diverged(trial: Any) -> str | None:
    if trial.status == trial_module.TrialStatus.FAILED:
        return "the objective was not a number: training diverged (loss became NaN or inf)"
    return None


def _last_line(message: str | None) -> str | None:
    """KerasTuner stores a whole traceback; keep it, but lead with the error itself."""
    if not message:
        return None
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return f"{lines[-1]}\n\n{message}" if lines else message


class RecordingRandomSearch(RecordingTuner, kt.RandomSearch):
    pass


class RecordingHyperband(RecordingTuner, kt.Hyperband):
    pass


class RecordingBayesian(RecordingTuner, kt.BayesianOptimization):
    pass


class RecordingGridSearch(RecordingTuner, kt.GridSearch):
    pass


class RecordingTPE(OptunaSearch, RecordingTuner, kt.Tuner):
    sampler = "tpe"


class RecordingNSGA2(OptunaSearch, RecordingTuner, kt.Tuner):
    sampler = "nsga2"


TUNERS: dict[str, type[RecordingTuner]] = {
    "random_search": RecordingRandomSearch,
    "hyperband": RecordingHyperband,
    "bayesian": RecordingBayesian,
    "grid": RecordingGridSearch,
    "tpe": RecordingTPE,  # type: ignore[dict-item]
    "nsga2": RecordingNSGA2,  # type: ignore[dict-item]
}
