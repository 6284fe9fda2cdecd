"""The best model, raw rows in, in every format (model_export); checkpoint pruning.

KerasTuner keeps a weights checkpoint per trial (users report gigabytes per
search). A job keeps only what resume and the best model need: the best trial's
checkpoint and, for Hyperband, those of trials its open brackets may still
promote (a promoted trial starts from its parent's weights); and, with an ensemble of a
one-split job, those of the trials it may pick (tuner_jobs.search.ensemble.pool_size of
the best: its members are those networks; a cross-validated job's are refit). Only those
candidates keep their predictions.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import keras

from tuner_jobs.search.cross_validation import fold_checkpoints
from tuner_jobs.search.ensemble import PREDICTIONS_FILE, ensemble_members, pool_size
from tuner_jobs.search.keras_tuner_compat import checkpoint_path, hyperband_brackets
from tuner_jobs.search.model_export import export_model_files, exported_trial
from tuner_jobs.search.optuna_oracle import front_trial_ids

logger = logging.getLogger(__name__)


def best_completed_trial(oracle: Any) -> Any | None:
    """The best trial with a model: KerasTuner's ranking also lists failed trials, and a
    trial that diverged after a finite first epoch ends COMPLETED with no score (and no
    checkpoint: its best epoch was never written).

    Ties go to the lowest trial id, as in the database's best (app.store.reads). Not
    KerasTuner's order: its sort is stable over `oracle.trials`, which a reloaded oracle
    fills in the file system's order, so a recycled process could name another of the
    tied trials best, export it, and prune the checkpoint the last process kept."""
    best = ranked_trials(oracle)
    if not best:
        return None
    tied = [t for t in best if _same_rank(oracle, t, best[0])]
    return min(tied, key=lambda t: t.trial_id)  # the database's order: text


def ranked_trials(oracle: Any) -> list[Any]:
    """The completed trials with a finite score, in KerasTuner's ranking."""
    return [
        t
        for t in oracle.get_best_trials(len(oracle.trials))
        if t.status == "COMPLETED" and t.score is not None and math.isfinite(t.score)
    ]


def ensemble_candidates(oracle: Any, pool: int) -> list[Any]:
    """The `pool` best completed trials, best_completed_trial first: the trials an ensemble
    may pick (a trial leaves them only as others pass it)."""
    best = best_completed_trial(oracle)
    if best is None:
        return []
    # Ties by trial id, as best_completed_trial's: every process keeps the same trials.
    sign = -1.0 if oracle.objective.direction == "max" else 1.0
    others = sorted(
        (t for t in ranked_trials(oracle) if t.trial_id != best.trial_id),
        key=lambda t: (sign * t.score, t.trial_id),
    )
    return [best, *others][:pool]


def _same_rank(oracle: Any, trial: Any, first: Any) -> bool:
    """Ranked alike: the same score, or for several objectives the same values of all."""
    values = getattr(oracle, "objective_values", None)
    if values is not None and len(getattr(oracle, "objectives", ())) > 1:
        return bool(values(trial) == values(first))
    return bool(trial.score == first.score)


def export_best_model(
    tuner: Any,
    preprocessor: keras.Model,
    path: Path,
    best: Any | None = None,
    trained: keras.Model | None = None,
    *,
    interim: bool = False,
) -> str | None:
    """Save preprocessing + the best trial's network (at its best epoch); returns the trial
    id, or None when its card could not be written (an export is done when its card is:
    the caller tries again). `best`: that trial, when the caller has already looked it up;
    `trained`: its network to save instead of its checkpoint's (cross-validation's refit);
    `interim`: the search goes on, so the `.keras` file only (model_export)."""
    best = best or best_completed_trial(tuner.oracle)
    if best is None:
        return None
    trained = trained if trained is not None else tuner.load_model(best)
    # An uncompiled copy: the saved file carries no optimizer state to warn about on load.
    network = keras.models.clone_model(trained)
    network.set_weights(trained.get_weights())
    raw_inputs = preprocessor.input
    full = keras.Model(raw_inputs, network(preprocessor(raw_inputs)), name="best_model")
    # Every format (.keras, SavedModel, ONNX) and the model card, each moved into place
    # whole; the card's context is what runner.build_search put on the tuner.
    context = getattr(tuner, "export_context", None)
    export_model_files(full, path, best.trial_id, context, interim=interim)
    if context is not None and exported_trial(path) != best.trial_id:
        return None  # the model went without its card (model_export._card_files logged why)
    return best.trial_id


def _needed_by_hyperband(oracle: Any) -> set[str]:
    brackets = hyperband_brackets(oracle)
    if not brackets:
        return set()
    return {info["id"] for bracket in brackets for rnd in bracket["rounds"] for info in rnd}


def prune_checkpoints(tuner: Any) -> None:
    """Delete trial checkpoints (and predictions) that neither the best model, the ensemble
    nor a resume will read."""
    oracle = tuner.oracle
    best = best_completed_trial(oracle)
    keep = ({best.trial_id} if best else set()) | _needed_by_hyperband(oracle)
    ongoing = list(oracle.ongoing_trials.values())
    keep |= {trial.trial_id for trial in ongoing}
    # A running Hyperband trial continues from its parent's checkpoint, which it may not
    # have loaded yet (another tuner of a parallel job): the oracle drops a bracket from
    # its open brackets as soon as its last round's trials are handed out, not finished.
    keep |= {
        parent
        for trial in ongoing
        if (parent := trial.hyperparameters.values.get("tuner/trial_id")) is not None
    }
    keep |= front_trial_ids(oracle)  # a multi-objective job keeps its Pareto front's models
    candidates: set[str] = set()
    if (members := ensemble_members(tuner)) is not None:
        candidates = {t.trial_id for t in ensemble_candidates(oracle, pool_size(members))}
        if getattr(tuner, "folds", None) is None:
            keep |= candidates  # a one-split member is its trial's network (refit otherwise)
    running = {trial.trial_id for trial in ongoing}
    for trial_id in oracle.trials:
        if trial_id not in candidates and trial_id not in running:
            # Out of the ensemble's candidates, an ended trial never comes back in. (A running
            # one, on another slot, may have written its predictions but not yet ended.)
            (Path(tuner.get_trial_dir(trial_id)) / PREDICTIONS_FILE).unlink(missing_ok=True)
        if trial_id in keep:
            continue
        base = checkpoint_path(tuner, trial_id)
        for checkpoint in [Path(base), *fold_checkpoints(tuner, trial_id, base)]:
            if checkpoint.exists():
                checkpoint.unlink()
    logger.debug("pruned checkpoints", extra={"kept": sorted(keep)})
