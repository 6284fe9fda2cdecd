"""Runs one job's KerasTuner search: data, hyperparameters, tuner, callbacks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.search.spec import CallbacksSpec, ResolvedSpec
from app.settings import Settings
from app.store.job_files import BEST_MODEL_FILE, KERAS_TUNER_PROJECT, TENSORBOARD_DIR, job_dir
from app.store.models import Dataset, Job
from app.store.queue import SlotClaim
from app.store.slot_queue import yields_to_waiting_job
from app.store.uploads import dataset_path
from tuner_jobs.search.best_model import best_completed_trial, export_best_model, prune_checkpoints
from tuner_jobs.search.cross_validation import Folds
from tuner_jobs.search.data import TrainingData, prepare
from tuner_jobs.search.evaluation import evaluate_and_record
from tuner_jobs.search.front_models import keep_front_models
from tuner_jobs.search.hyperparameters import build_hyperparameters
from tuner_jobs.search.keras_tuner_compat import set_hyperband_min_epochs
from tuner_jobs.search.model_builder import DenseHyperModel
from tuner_jobs.search.model_card import CardContext
from tuner_jobs.search.model_reuse import ModelCache
from tuner_jobs.search.optuna_oracle import front_trial_ids
from tuner_jobs.search.pruning import MedianPruner
from tuner_jobs.search.recorder import TrialRecorder
from tuner_jobs.search.recycling import recycle_reason, resident_mb
from tuner_jobs.search.time_budget import finished_if_out_of_time
from tuner_jobs.search.tuners import (
    TUNERS,
    RecordingTuner,
    RecycleProcess,
    SearchStopped,
    StopSignal,
)
from tuner_jobs.search.warm_start import install as install_warm_start

logger = logging.getLogger(__name__)

# Too many failed trials in a row means the setup is broken, not unlucky.
MAX_CONSECUTIVE_FAILED_TRIALS = 3


def make_callbacks(config: CallbacksSpec, logdir: Path) -> list[keras.callbacks.Callback]:
    # A diverged trial stops at the first NaN loss instead of burning its epochs;
    # KerasTuner then records it FAILED (a NaN objective) and the search goes on.
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if (es := config.early_stopping) is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=es.monitor,
                patience=es.patience,
                min_delta=es.min_delta,
                restore_best_weights=es.restore_best_weights,
            )
        )
    if (rl := config.reduce_lr_on_plateau) is not None:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=rl.monitor,
                factor=rl.factor,
                patience=rl.patience,
                min_lr=rl.min_lr,
                min_delta=rl.min_delta,
            )
        )
    if config.tensorboard:
        # KerasTuner gives each trial its own subdirectory and writes HParams.
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logdir)))
    return callbacks


def make_tuner(
    job: Job,
    spec: ResolvedSpec,
    data: TrainingData,
    directory: Path,
    recorder: TrialRecorder,
    stop: StopSignal,
    settings: Settings,
) -> RecordingTuner:
    tuner_spec = spec.tuner
    # A list reaches Optuna's tuners only (app.search.objectives): they keep the objectives
    # apart, KerasTuner's score being the first.
    objectives = [kt.Objective(o.name, direction=o.direction) for o in spec.objectives]
    objective = objectives[0] if len(objectives) == 1 else objectives
    common: dict[str, Any] = {
        "hypermodel": DenseHyperModel(
            input_width=data.x_train.shape[1], head=data.head, seed=tuner_spec.seed
        ),
        "objective": objective,
        "hyperparameters": build_hyperparameters(job.search_space),
        "tune_new_entries": False,
        "allow_new_entries": False,
        "seed": tuner_spec.seed,
        "executions_per_trial": tuner_spec.executions_per_trial,
        "max_consecutive_failed_trials": MAX_CONSECUTIVE_FAILED_TRIALS,
        "directory": str(directory),
        "project_name": KERAS_TUNER_PROJECT,
        # Reload the project if it exists: a resumed job keeps its finished trials.
        "overwrite": False,
        "recorder": recorder,
        "stop": stop,
        "pruner": None
        if spec.pruning is None
        else MedianPruner(
            spec.pruning,
            spec.primary_objective,
            lambda: recorder.completed_curves(spec.primary_objective.name),
        ),
        "epochs": spec.training.epochs,
        "model_cache": ModelCache() if settings.model_reuse else None,
        "rng_seed": tuner_spec.rng_seed,
        "folds": Folds(data.x_train, data.y_train, data.folds) if data.folds else None,
        "after_trial": _after_trial(
            data, directory / BEST_MODEL_FILE, settings, keep_best=not spec.parallel
        ),
    }
    cls = TUNERS[tuner_spec.algorithm]
    if tuner_spec.algorithm == "hyperband":
        tuner = cls(
            max_epochs=tuner_spec.max_epochs,
            factor=tuner_spec.factor,
            hyperband_iterations=tuner_spec.hyperband_iterations,
            **common,
        )
        if tuner_spec.max_trials is not None:
            # HyperbandOracle takes no max_trials, but the base Oracle honours the cap.
            tuner.oracle.max_trials = tuner_spec.max_trials
        if tuner_spec.min_epochs is not None and not tuner.oracle.trials:
            # A reloaded project (trials already made) keeps the rung it started with.
            set_hyperband_min_epochs(tuner.oracle, tuner_spec.min_epochs)
        return tuner
    return cls(max_trials=tuner_spec.max_trials, **common)


def _after_trial(data: TrainingData, path: Path, settings: Settings, *, keep_best: bool):  # type: ignore[no-untyped-def]
    """After each trial: save the model if it is the new best, drop stale checkpoints,
    and hand over to a fresh process when this one has run enough trials or grown.
    (In a parallel job the chief, which holds the oracle, keeps the best model.)"""
    trials_here = 0

    def after_trial(tuner: RecordingTuner, trial_id: str) -> None:
        nonlocal trials_here
        if keep_best:
            best = best_completed_trial(tuner.oracle)  # type: ignore[attr-defined]
            if best is not None and best.trial_id == trial_id:
                export_best_model(tuner, data.preprocessor, path)
            front = front_trial_ids(tuner.oracle)  # type: ignore[attr-defined]
            keep_front_models(tuner, data.preprocessor, path.parent, front)
            prune_checkpoints(tuner)
        trials_here += 1
        rss = resident_mb()
        reason = recycle_reason(trials_here, rss, settings)
        if reason is not None:
            logger.info(
                "recycling the search process",
                extra={"trials_here": trials_here, "rss_mb": round(rss)},
            )
            raise RecycleProcess(reason)

    return after_trial


def build_search(
    *,
    settings: Settings,
    job: Job,
    spec: ResolvedSpec,
    dataset: Dataset,
    recorder: TrialRecorder,
    stop: StopSignal,
) -> tuple[RecordingTuner, TrainingData, Path]:
    """The job's data and tuner (reloading its project directory if it exists)."""
    keras.utils.set_random_seed(spec.tuner.rng_seed)
    data = prepare(
        path=dataset_path(settings.datasets_dir, dataset.sha256, dataset.format),
        fmt=dataset.format,
        target=dataset.target,
        task=dataset.task,
        classes=dataset.classes,
        columns=dataset.columns,
        validation_split=spec.training.validation_split,
        seed=spec.tuner.rng_seed,
        max_unpacked_bytes=8 * (settings.max_upload_mb << 20),
        test_split=spec.training.test_split,
        folds=spec.training.folds,
    )
    directory = job_dir(settings, job.id)
    directory.mkdir(parents=True, exist_ok=True)
    tuner = make_tuner(job, spec, data, directory, recorder, stop, settings)
    tuner.export_context = CardContext(job, dataset, spec, data, recorder.engine)
    if spec.warm_start is not None:
        # Its oracle hands out the configurations resolved at submission first.
        install_warm_start(tuner.oracle, spec.warm_start.configurations)  # type: ignore[attr-defined]
    return tuner, data, directory


def run_search(
    *,
    settings: Settings,
    job: Job,
    spec: ResolvedSpec,
    dataset: Dataset,
    recorder: TrialRecorder,
    stop: StopSignal,
) -> None:
    """Run the search to the end, or until `stop` is set (raises SearchStopped).

    In a parallel job this process is one tuner worker other than tuner0
    (KERASTUNER_TUNER_ID and the chief's address are in the environment): it runs
    trials until the chief's oracle says the search is over; the chief (tuner0,
    tuner_jobs.search.chief) judges the outcome and keeps the best model. `spec` is the
    job's, validated once where the search process loaded it (app.search.spec.load_spec).
    """
    tuner, data, directory = build_search(
        settings=settings, job=job, spec=spec, dataset=dataset, recorder=recorder, stop=stop
    )
    if spec.parallel_trials == "auto" and isinstance(recorder.claim, SlotClaim):
        tuner.hand_back = _lent_slot_wanted(recorder)
    logger.info("search starting", extra={"job_id": job.id, "algorithm": spec.tuner.algorithm})
    finish = None if spec.parallel else lambda: _finish(tuner, data, spec, dataset, recorder)
    with finished_if_out_of_time(recorder.engine, job.id, tuner, finish):
        search(tuner, data, spec, directory)
    if spec.parallel:
        return
    _finish(tuner, data, spec, dataset, recorder)


def _finish(
    tuner: RecordingTuner,
    data: TrainingData,
    spec: ResolvedSpec,
    dataset: Dataset,
    recorder: TrialRecorder,
) -> None:
    """A one-process search's end: its outcome judged, its best model exported, then
    refit, baselines and test score (evaluate_and_record)."""
    directory = Path(tuner.directory)  # type: ignore[attr-defined]
    check_outcome(tuner)
    if not (directory / BEST_MODEL_FILE).exists():
        # A resumed search whose best trial finished before the interruption.
        export_best_model(tuner, data.preprocessor, directory / BEST_MODEL_FILE)
    evaluate_and_record(tuner, data, spec, dataset, recorder)


def _lent_slot_wanted(recorder: TrialRecorder):  # type: ignore[no-untyped-def]
    """For a tuner on a slot an "auto" job was lent: hand it back when a job waits
    (app.store.slot_queue.yields_to_waiting_job; the supervisor then takes that job)."""
    claim = recorder.claim
    assert isinstance(claim, SlotClaim)

    def wanted() -> str | None:
        try:
            with Session(recorder.engine) as session:
                waiting = yields_to_waiting_job(session=session, claim=claim)
        except DBAPIError:
            return None  # the database is away: go on, the recorder waits it out
        return "a job is waiting: handing the lent slot back" if waiting else None

    return wanted


def search(tuner: RecordingTuner, data: TrainingData, spec: ResolvedSpec, directory: Path) -> None:
    """Run trials until the oracle says STOPPED (raises SearchStopped when asked to stop)."""
    try:
        tuner.search(  # type: ignore[attr-defined]
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=spec.training.epochs,
            callbacks=make_callbacks(spec.callbacks, directory / TENSORBOARD_DIR),
            verbose=0,
        )
    except SearchStopped:
        tuner.record_interrupted()
        raise


def check_outcome(tuner: RecordingTuner) -> None:
    trials = tuner.oracle.trials.values()  # type: ignore[attr-defined]
    if trials and not any(t.status == "COMPLETED" for t in trials):
        last = [t.message for t in trials if t.message][-1:] or ["no trial completed"]
        raise RuntimeError(
            f"every trial failed; the last error: {last[0].strip().splitlines()[-1]}"
        )
