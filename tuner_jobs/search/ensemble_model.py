"""The job's ensemble (training.ensemble): selected from its trials' predictions, built as
one plain Keras model, and exported as the job's model when it scores above the best
trial on the same folds.

The model is the shared preprocessing, then each member's network, each output scaled
by its weight (Rescaling) and summed (Add): built-in layers only, so it loads with
`keras.saving.load_model(path, safe_mode=True)` where this project is not installed, and
exports to SavedModel and ONNX as any best model does (model_export).

A member of a cross-validated job is its trial's configuration refit on every training
row, as the best trial is (cross_validation.refit; the best trial's own refit is reused),
so the ensemble's score, like the best trial's, is its out-of-fold estimate. Averaging each
member's fold models instead (bagging, no refit) scored the same on held-out rows (better
on three of six small tables, worse on three) but its model had `folds` times the
networks, and writing those took longer than the refits did on every table measured
(docs/benchmarks.md). The refits are budgeted: a member's refit is assumed to take as long
as the best trial's did, and the selection takes no more members than REFIT_BUDGET_S (or,
under a time budget, half the end phase) leaves time to refit. A one-split job's member
is its trial's network at its best epoch: the model its validation predictions came from.

Files: when the ensemble is used, the best trial's files (each format, its card) are kept
in `best_trial/` (hard links of what `best_model.*` held) before the ensemble replaces
`best_model.*`; GET /jobs/{id}/model?source=trial serves them.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from app.search.spec import ResolvedSpec
from app.store.job_files import BEST_MODEL_FILE, BEST_TRIAL_DIR, MODEL_FILES
from tuner_jobs.search.best_model import (
    best_completed_trial,
    ensemble_candidates,
    export_best_model,
)
from tuner_jobs.search.cross_validation import Refit, predict_rows, refit
from tuner_jobs.search.data import TrainingData
from tuner_jobs.search.ensemble import (
    Selection,
    ensemble_members,
    greedy_selection,
    load_predictions,
    metric_value,
    pool_size,
    protocol_score,
)
from tuner_jobs.search.keras_tuner_compat import checkpoint_path
from tuner_jobs.search.model_export import CARD_MEMBERS, export_model_files, exported_trial
from tuner_jobs.search.recorder import finite

logger = logging.getLogger(__name__)

# Seconds the members' refits may take after the best trial's, for a job without a time
# budget (one with a budget keeps half its end phase for them).
REFIT_BUDGET_S = 60.0


@dataclass(frozen=True)
class Candidate:
    trial: Any
    predictions: np.ndarray


def members_are(tuner: Any) -> str:
    """What a member is: its trial refit (cross-validation), or its trial's network."""
    return "refit" if getattr(tuner, "folds", None) is not None else "trial_models"


def refit_cap(spec: ResolvedSpec, best_refit: Refit | None) -> int | None:
    """The most members whose refits fit the time left for them (None: no cap)."""
    if best_refit is None:
        return None
    derivation = spec.derivation
    budgeted = spec.max_runtime_s is not None and derivation is not None
    budget = derivation.end_phase_s / 2 if budgeted else REFIT_BUDGET_S  # type: ignore[union-attr]
    return 1 + math.floor(budget / max(best_refit.seconds, 0.1))


def _truth(tuner: Any, data: TrainingData) -> tuple[np.ndarray, list[np.ndarray]]:
    """The targets the trials' predictions are of, and the folds' parts of them."""
    folds = getattr(tuner, "folds", None)
    if folds is not None:
        return folds.y, [held for _, held in folds.parts]
    return data.y_val, [np.arange(len(data.y_val))]


def _buildable(tuner: Any, trial_id: str) -> bool:
    """Whether the trial's member can be made: refit from its hyperparameters (folds), or
    loaded from its checkpoint (one split: pruning keeps the candidates')."""
    return tuner.folds is not None or Path(checkpoint_path(tuner, trial_id)).is_file()


def _select(
    tuner: Any, data: TrainingData, spec: ResolvedSpec, max_members: int
) -> tuple[list[Candidate], Selection, float] | None:
    y, parts = _truth(tuner, data)
    candidates = []
    for trial in ensemble_candidates(tuner.oracle, pool_size(max_members)):
        predicted = load_predictions(Path(tuner.get_trial_dir(trial.trial_id)), len(y))
        if predicted is not None and _buildable(tuner, trial.trial_id):
            candidates.append(Candidate(trial, predicted))
    best = best_completed_trial(tuner.oracle)
    if not candidates or best is None or candidates[0].trial.trial_id != best.trial_id:
        return None  # the best trial left no predictions (one from an older version)
    objective = spec.primary_objective
    regression = data.head.activation is None

    def score(predicted: np.ndarray) -> float:
        return protocol_score(objective.name, y, predicted, parts, regression=regression)

    selection = greedy_selection(
        [c.predictions for c in candidates],
        score,
        maximize=objective.direction == "max",
        max_members=max_members,
    )
    return candidates, selection, score(candidates[0].predictions)


def _copy(model: keras.Model, name: str) -> keras.Model:
    """An uncompiled copy of `model` under `name` (the tuner's model may be its cache's)."""
    network = keras.models.clone_model(model)
    network.set_weights(model.get_weights())
    return keras.Model(network.input, network.output, name=name)


def member_network(
    tuner: Any, trial: Any, seed: int, best_refit: Refit | None
) -> keras.Model | None:
    """The trial's member network (None: its refit diverged)."""
    name = f"trial_{trial.trial_id}"
    if tuner.folds is None:
        return _copy(tuner.load_model(trial), name)
    if best_refit is not None and best_refit.trial_id == trial.trial_id:
        return _copy(best_refit.model, name)
    refitted = refit(tuner, trial, seed)
    return None if refitted is None else _copy(refitted.model, name)


def ensemble_network(networks: list[keras.Model], weights: list[float]) -> keras.Model:
    """Encoded features in, the weighted average of `networks`' outputs out."""
    features = keras.Input(shape=networks[0].input.shape[1:], name="features")
    outputs = [
        keras.layers.Rescaling(scale=weight, name=f"weight_{network.name}")(network(features))
        for network, weight in zip(networks, weights, strict=True)
    ]
    average = outputs[0] if len(outputs) == 1 else keras.layers.Add(name="average")(outputs)
    return keras.Model(features, average, name="ensemble")


def keep_best_trial_files(directory: Path) -> None:
    """Hard links (copies where links are refused) of the best model's files, now the best
    trial's, in `best_trial/`, which is replaced whole."""
    target = directory / BEST_TRIAL_DIR
    fresh = directory / f".{BEST_TRIAL_DIR}.partial"
    old = directory / f".{BEST_TRIAL_DIR}.old"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    for name in (*MODEL_FILES.values(), *CARD_MEMBERS):
        source = directory / name
        if not source.is_file():
            continue
        try:
            os.link(source, fresh / name)
        except OSError:
            shutil.copy2(source, fresh / name)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)


def drop_best_trial_files(directory: Path) -> None:
    """The job's model is the best trial's: no second copy of it."""
    shutil.rmtree(directory / BEST_TRIAL_DIR, ignore_errors=True)


def build_ensemble(
    tuner: Any, data: TrainingData, spec: ResolvedSpec, best_refit: Refit | None
) -> dict[str, Any] | None:
    """Select the ensemble; when it scores above the best trial, export it as the job's
    model (the best trial's files kept in best_trial/). Returns the job's `ensemble`
    (None: off, or nothing to select from). `best_refit`: the best trial's refit."""
    max_members = ensemble_members(tuner)
    if max_members is None:
        return None
    started = time.monotonic()
    directory = Path(tuner.directory)
    path = directory / BEST_MODEL_FILE
    best = best_completed_trial(tuner.oracle)
    if best is None:
        return None
    if exported_trial(path) != best.trial_id:
        # An ensemble an earlier run of this end exported: the best trial's comes back.
        trained = None if best_refit is None else best_refit.model
        export_best_model(tuner, data.preprocessor, path, best, trained=trained)
    cap = refit_cap(spec, best_refit) if tuner.folds is not None else None
    chosen = _select(tuner, data, spec, max(2, min(max_members, cap or max_members)))
    if chosen is None:
        drop_best_trial_files(directory)
        return None
    candidates, selection, trial_score = chosen
    objective = spec.primary_objective
    maximize = objective.direction == "max"
    weights = selection.weights
    members = [candidates[i] for i in weights]
    better = selection.score > trial_score if maximize else selection.score < trial_score
    info: dict[str, Any] = {
        "members": [
            {"trial_id": c.trial.trial_id, "weight": round(weights[i], 6)}
            for i, c in zip(weights, members, strict=True)
        ],
        "score": finite(selection.score),
        "trial_score": finite(trial_score),
        "test_score": None,
        "used": bool(better and len(members) > 1),
        "metric": objective.name,
        "members_are": members_are(tuner),
    }
    if info["used"]:
        info["used"] = _export(tuner, data, spec, members, list(weights.values()), best_refit, info)
    if not info["used"]:
        drop_best_trial_files(directory)
    logger.info(
        "ensemble selected",
        extra={
            "members": len(members),
            "score": info["score"],
            "trial_score": trial_score,
            "used": info["used"],
            "seconds": round(time.monotonic() - started, 2),
        },
    )
    return info


def _export(
    tuner: Any,
    data: TrainingData,
    spec: ResolvedSpec,
    members: list[Candidate],
    weights: list[float],
    best_refit: Refit | None,
    info: dict[str, Any],
) -> bool:
    """Build the members' networks and export the ensemble as the job's model (setting its
    test score); False when a member's refit diverged (the best trial stays)."""
    networks = []
    for candidate in members:
        network = member_network(tuner, candidate.trial, spec.tuner.rng_seed, best_refit)
        if network is None:
            logger.warning("a member's refit diverged: the ensemble is not used")
            return False
        networks.append(network)
    network = ensemble_network(networks, weights)
    if len(data.x_test):
        predicted = predict_rows(network, data.x_test)
        info["test_score"] = finite(
            metric_value(
                info["metric"], data.y_test, predicted, regression=data.head.activation is None
            )
        )
    raw = data.preprocessor.input
    full = keras.Model(raw, network(data.preprocessor(raw)), name="ensemble_model")
    directory = Path(tuner.directory)
    keep_best_trial_files(directory)
    context = getattr(tuner, "export_context", None)
    export_model_files(full, directory / BEST_MODEL_FILE, None, context, ensemble=info)
    return True
