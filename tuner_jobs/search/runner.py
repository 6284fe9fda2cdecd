"""Runs one job's KerasTuner search: data, hyperparameters, tuner, callbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import keras_tuner as kt

from app.search.spec import CallbacksSpec, ResolvedSpec
from app.settings import Settings
from app.store.claims import SlotClaim
from app.store.job_files import KERAS_TUNER_PROJECT, TENSORBOARD_DIR, job_dir
from app.store.search_values import SearchJob
from app.store.uploads import dataset_path
from tuner_jobs.search.child import Role
from tuner_jobs.search.cross_validation import Folds
from tuner_jobs.search.data import TrainingData, prepare
from tuner_jobs.search.hyperparameters import build_hyperparameters
from tuner_jobs.search.keras_tuner_compat import (
    drop_ended_retries,
    is_oracle_client,
    set_hyperband_min_epochs,
)
from tuner_jobs.search.life_cycle import SearchLifeCycle
from tuner_jobs.search.model_builder import DenseHyperModel
from tuner_jobs.search.model_card import CardContext
from tuner_jobs.search.model_reuse import ModelCache
from tuner_jobs.search.pruning import MedianPruner
from tuner_jobs.search.recorder import TrialRecorder
from tuner_jobs.search.tuners import (
    TUNERS,
    RecordingTuner,
    SearchStopped,
    StopSignal,
    SupervisedStop,
)
from tuner_jobs.search.warm_start import install as install_warm_start

if TYPE_CHECKING:
    from app.store.search_gateway import SearchDatabase

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
    job: SearchJob,
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
        # A reloaded project (trials already made) keeps the rung it started with; a tuner
        # slot's client has no rungs: the chief's oracle was given them.
        oracle = tuner.oracle
        if tuner_spec.min_epochs is not None and not is_oracle_client(oracle) and not oracle.trials:
            set_hyperband_min_epochs(oracle, tuner_spec.min_epochs)
        return tuner
    return cls(max_trials=tuner_spec.max_trials, **common)


def build_search(
    *,
    settings: Settings,
    job: SearchJob,
    spec: ResolvedSpec,
    database: SearchDatabase,
    recorder: TrialRecorder,
    stop: SupervisedStop,
    role: Role,
    guard: Callable[[], None] = lambda: None,
) -> SearchLifeCycle:
    """The job's data and tuner (reloading its project directory if it exists), in the life
    cycle of a process of `role` (`guard`: tuner_jobs.search.life_cycle.SearchLifeCycle)."""
    keras.utils.set_random_seed(spec.tuner.rng_seed)
    dataset = job.dataset
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
    if role is not Role.TUNER and (ended := drop_ended_retries(tuner.oracle)):
        # A reloaded oracle retries every trial its saved state lists as running, which
        # includes one that ended as its last process died (a remote EndTrial's window).
        logger.info("ended trials not run again", extra={"job_id": job.id, "trials": ended})
    tuner.export_context = CardContext(job, spec, data, database)
    if spec.warm_start is not None:
        # Its oracle hands out the configurations resolved at submission first.
        install_warm_start(tuner.oracle, spec.warm_start.configurations)  # type: ignore[attr-defined]
    life = SearchLifeCycle(
        role=role,
        tuner=tuner,
        data=data,
        spec=spec,
        job=job,
        database=database,
        settings=settings,
        stop=stop,
        guard=guard,
    )
    tuner.after_trial = life.after_trial
    return life


def run_search(
    *,
    settings: Settings,
    job: SearchJob,
    spec: ResolvedSpec,
    database: SearchDatabase,
    recorder: TrialRecorder,
    stop: SupervisedStop,
) -> None:
    """Run the search to the end, or until `stop` is set (raises SearchStopped).

    In a parallel job this process is one tuner worker other than tuner0
    (KERASTUNER_TUNER_ID and the chief's address are in the environment): it runs
    trials until the chief's oracle says the search is over; the chief (tuner0,
    tuner_jobs.search.chief) judges the outcome and keeps the best model. `spec` is the
    job's, validated once where the search process loaded it (app.search.spec.load_spec).
    """
    life = build_search(
        settings=settings,
        job=job,
        spec=spec,
        database=database,
        recorder=recorder,
        stop=stop,
        role=Role.TUNER if spec.parallel else Role.SEARCH,
    )
    tuner = life.tuner
    if spec.parallel_trials == "auto" and isinstance(database.claim, SlotClaim):
        tuner.hand_back = _lent_slot_wanted(database)
    logger.info("search starting", extra={"job_id": job.id, "algorithm": spec.tuner.algorithm})
    with life.finished_if_out_of_time():
        search(tuner, life.data, spec, life.directory)
    if life.finishes:
        life.end()


def _lent_slot_wanted(database: SearchDatabase) -> Callable[[], str | None]:
    """For a tuner on a slot an "auto" job was lent: hand it back when a job waits
    (app.store.slot_queue.yields_to_waiting_job; the supervisor then takes that job)."""

    def wanted() -> str | None:
        if database.yields_to_waiting_job():
            return "a job is waiting: handing the lent slot back"
        return None

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
