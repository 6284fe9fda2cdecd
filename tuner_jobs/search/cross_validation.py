"""Cross-validation of a trial (`training.cross_validation`), and the refit of the winner.

KerasTuner's own Tuner.run_trial fits a trial `executions_per_trial` times and returns
the histories; the oracle scores the trial with the mean of their best objective values
(and the mean of their best steps). `CrossValidated.run_trial` runs that once per fold,
on the fold's rows, and returns every fold's histories: the oracle's mean is then the
mean over the folds, with no change to KerasTuner's scoring, its trial state, resume
(an interrupted trial reruns, every fold) or parallel trials (the chief only sees scores).

What each fold adds to the trial:
- its score (best objective over its epochs), recorded in the trial's `fold_scores`;
- its epochs in the stored curve, which is the mean over the folds at each epoch (an
  epoch only some folds reached, the others having stopped early, is the mean of those);
- its own weights checkpoint (fold 0 in KerasTuner's file, fold k beside it), so a
  Hyperband promotion continues each fold from the same fold of its parent: a fold's
  validation rows never reach its model through the parent's weights.
- its best epoch's predictions of its validation rows, which, over all folds, make one
  out-of-fold prediction per training row: the trial's `predictions.npy`, from which the
  search's ensemble is selected (tuner_jobs.search.ensemble). A one-split trial keeps its
  validation rows' predictions the same way.
Median pruning judges the first fold (its curve against the completed trials' mean
curves); a trial pruned there runs no other fold, scores that fold's best, and keeps no
predictions (they would cover one fold's rows).

After the search, `refit` trains the best configuration on every training row (all
but the test rows) for the mean of its folds' best epoch counts (scikit-learn's
`refit=True`): that model is the job's best model. Each member of the job's ensemble is
refit the same way (tuner_jobs.search.ensemble_model).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tuner_jobs.search.ensemble import ensemble_members, save_predictions

logger = logging.getLogger(__name__)

# In each cross-validated trial's KerasTuner directory: its folds' scores and best epochs,
# where the refit (in whichever process ends the search) finds them.
FOLDS_FILE = "cross_validation.json"


@dataclass(frozen=True)
class Folds:
    """The rows every fold draws from (x, y: all but the test rows) and, per fold, the
    positions in them of its training and validation rows."""

    x: np.ndarray
    y: np.ndarray
    parts: list[tuple[np.ndarray, np.ndarray]]


def best_of_history(history: Any, objective: Any) -> tuple[float | None, int]:
    """(best objective value, its 0-based index) over a fit's epochs, as KerasTuner picks
    (objective.get_value: a multi-objective job's combined value too)."""
    logged = history.history
    epochs = max((len(values) for values in logged.values()), default=0)
    best: float | None = None
    best_at = 0
    for index in range(epochs):
        metrics = {name: values[index] for name, values in logged.items() if index < len(values)}
        try:
            value = float(objective.get_value(metrics))
        except (KeyError, TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        if best is None or objective.better_than(value, best):
            best, best_at = value, index
    return best, best_at


def fold_checkpoint(base: str, fold: int) -> str:
    """Fold `fold`'s weights file, beside the trial's own (which fold 0 uses)."""
    path = Path(base)
    return str(path.with_name(f"fold{fold}.{path.name}"))


class CrossValidated:
    """Mixin for a KerasTuner tuner (under RecordingTuner): runs each trial on `folds`.
    Without folds every method is KerasTuner's own."""

    def __init__(self, *args: Any, folds: Folds | None = None, **kwargs: Any) -> None:
        self.folds = folds
        self._fold: int | None = None
        self._fold_epochs: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self._fold_scores: dict[str, list[float | None]] = {}
        self._fitted: keras.Model | None = None
        super().__init__(*args, **kwargs)

    def on_epoch_end(self, trial, model: keras.Model, epoch: int, logs=None) -> None:  # type: ignore[no-untyped-def]
        self._fitted = model  # the fit's model, whose best epoch predicts once the fit ends
        super().on_epoch_end(trial, model, epoch, logs)  # type: ignore[misc]

    def run_trial(self, trial: Any, *fit_args: Any, **fit_kwargs: Any) -> Any:
        self._fitted = None
        keep = ensemble_members(self) is not None
        if self.folds is None:
            results = super().run_trial(trial, *fit_args, **fit_kwargs)  # type: ignore[misc]
            validation = fit_kwargs.get("validation_data")
            if keep and validation is not None:
                predicted = self._best_epoch_predictions(trial, validation[0])
                if predicted is not None:
                    save_predictions(self._trial_dir(trial), predicted)
            return results
        x, y = self.folds.x, self.folds.y
        trial_id = trial.trial_id
        self._fold_epochs[trial_id] = {}
        runs: list[list[Any]] = []
        ended: list[tuple[float | None, float]] = []
        out_of_fold: list[np.ndarray | None] = []
        try:
            for fold, (fit, held) in enumerate(self.folds.parts):
                self._fold = fold
                kwargs = {**fit_kwargs, "validation_data": (x[held], y[held])}
                runs.append(list(super().run_trial(trial, x[fit], y[fit], **kwargs)))  # type: ignore[misc]
                ended.append(self._fold_result(trial, runs[-1]))
                self.folds_ended(trial_id, [score for score, _ in ended])
                if getattr(self, "_pruned", {}).get(trial_id):
                    break  # pruned in its first fold (the one the pruner judges)
                if keep:
                    out_of_fold.append(self._best_epoch_predictions(trial, x[held]))
        finally:
            self._fold = None
            self._fold_epochs.pop(trial_id, None)
        self._record_folds(trial, ended)
        if keep and len(out_of_fold) == len(self.folds.parts):
            self._save_out_of_fold(trial, out_of_fold)
        return [history for run in runs for history in run]

    def _trial_dir(self, trial: Any) -> Path:
        return Path(self.get_trial_dir(trial.trial_id))  # type: ignore[attr-defined]

    def _best_epoch_predictions(self, trial: Any, x: np.ndarray) -> np.ndarray | None:
        """The fit just ended (this fold's, with folds) at its best epoch, as its checkpoint
        holds it (what the best model and the fold's score are), predicting rows `x`;
        None when it has no checkpoint (no epoch scored a number)."""
        model, self._fitted = self._fitted, None
        if model is None:
            return None
        try:
            # The model is KerasTuner's throwaway, or the cache's, which restores its state
            # before handing it out again (tuner_jobs.search.model_reuse).
            model.load_weights(self._get_checkpoint_fname(trial.trial_id))
        except (OSError, ValueError):
            return None
        return predict_rows(model, x)

    def _save_out_of_fold(self, trial: Any, parts: list[np.ndarray | None]) -> None:
        if any(part is None for part in parts):
            return
        assert self.folds is not None
        first = parts[0]
        assert first is not None
        predicted = np.zeros((len(self.folds.x), first.shape[-1]), dtype="float32")
        for (_, held), part in zip(self.folds.parts, parts, strict=True):
            predicted[held] = part
        save_predictions(self._trial_dir(trial), predicted)

    def _fold_result(self, trial: Any, run: list[Any]) -> tuple[float | None, float]:
        """A fold's (score, best epoch) over its executions' fits (the mean of each)."""
        objective = self.oracle.objective  # type: ignore[attr-defined]
        initial = int(trial.hyperparameters.values.get("tuner/initial_epoch", 0))
        bests = [best_of_history(history, objective) for history in run]
        values = [value for value, _ in bests if value is not None]
        score = statistics.fmean(values) if values else None
        return score, initial + statistics.fmean(at for _, at in bests)

    def folds_ended(self, trial_id: str, fold_scores: list[float | None]) -> None:
        """The trial's folds finished so far, after each: its progress (RecordingTuner
        writes it down)."""

    def _record_folds(self, trial: Any, ended: list[tuple[float | None, float]]) -> None:
        scores = [score for score, _ in ended]
        best_epochs = [best_epoch for _, best_epoch in ended]
        self._fold_scores[trial.trial_id] = scores
        folds_file = Path(self.get_trial_dir(trial.trial_id)) / FOLDS_FILE  # type: ignore[attr-defined]
        folds_file.write_text(json.dumps({"fold_scores": scores, "best_epochs": best_epochs}))

    def fold_scores(self, trial_id: str) -> list[float | None] | None:
        """The trial's score per fold (None without cross-validation), once it has run."""
        return self._fold_scores.pop(trial_id, None)

    def mean_over_folds(self, trial_id: str, epoch: int, logs: dict[str, Any]) -> dict[str, Any]:
        """The epoch's logs averaged with the same epoch of the trial's earlier folds: what
        the recorder stores as the trial's curve."""
        if self._fold is None:
            return logs
        seen = self._fold_epochs.setdefault(trial_id, {}).setdefault(epoch, [])
        seen.append(dict(logs))
        names = {name for fold_logs in seen for name in fold_logs}
        return {
            name: float(np.mean([float(f[name]) for f in seen if f.get(name) is not None]))
            for name in names
        }

    def pruner_judges(self) -> bool:
        """Whether the epoch now ending is one the pruner judges: with folds, the first's."""
        return not self._fold

    def _get_checkpoint_fname(self, trial_id: str) -> str:
        # KerasTuner's (private) name for a trial's weights file, read by its Tuner and its
        # Hyperband promotion alike: with folds, fold k > 0 keeps its own file beside it.
        base = super()._get_checkpoint_fname(trial_id)  # type: ignore[misc]
        return fold_checkpoint(base, self._fold) if self._fold else base


def predict_rows(model: keras.Model, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """`model`'s outputs for rows `x`, called directly (in inference mode) a batch at a
    time: on a few thousand rows faster than `predict`, which traces a function first."""
    if len(x) == 0:
        return np.zeros((0, int(model.output.shape[-1])), dtype="float32")
    parts = [
        keras.ops.convert_to_numpy(model(x[start : start + batch], training=False))
        for start in range(0, len(x), batch)
    ]
    return np.concatenate(parts).astype("float32")


def fold_checkpoints(tuner: Any, trial_id: str, base: str) -> list[Path]:
    """Trial `trial_id`'s checkpoints of folds 1..k-1 (none without cross-validation)."""
    folds = getattr(tuner, "folds", None)
    if folds is None:
        return []
    return [Path(fold_checkpoint(base, fold)) for fold in range(1, len(folds.parts))]


def refit_epochs(tuner: Any, trial: Any) -> int:
    """The mean over the trial's folds of the epochs to its best one, rounded, at least 1
    (from the folds file its process wrote; KerasTuner's floor of that mean without it)."""
    folds_file = Path(tuner.get_trial_dir(trial.trial_id)) / FOLDS_FILE
    try:
        best_epochs = json.loads(folds_file.read_text())["best_epochs"]
        mean = statistics.fmean(epoch + 1 for epoch in best_epochs)
    except (OSError, ValueError, KeyError, TypeError):
        initial = int(trial.hyperparameters.values.get("tuner/initial_epoch", 0))
        mean = initial + (trial.best_step or 0) + 1
    return max(1, round(mean))


@dataclass(frozen=True)
class Refit:
    model: keras.Model
    trial_id: str
    epochs: int
    rows: int
    seconds: float = 0.0


def refit(tuner: Any, best: Any, seed: int) -> Refit | None:
    """Trial `best`'s configuration (the best trial's, or an ensemble member's) trained on
    every training row (tuner.folds' rows) for `refit_epochs`; None when that training
    diverged (the best trial then keeps its best fold's model; an ensemble is not used)."""
    folds: Folds = tuner.folds
    started = time.monotonic()
    epochs = refit_epochs(tuner, best)
    keras.utils.set_random_seed(seed)
    hp = best.hyperparameters
    hypermodel = tuner.hypermodel
    model = hypermodel.build(hp)
    # No validation rows are left, so no EarlyStopping or ReduceLROnPlateau: the folds
    # chose the epochs. TerminateOnNaN keeps a diverged refit from being exported.
    history = hypermodel.fit(
        hp,
        model,
        folds.x,
        folds.y,
        epochs=epochs,
        callbacks=[keras.callbacks.TerminateOnNaN()],
        verbose=0,
    )
    losses = history.history.get("loss") or [float("nan")]
    if len(losses) < epochs or not math.isfinite(float(losses[-1])):
        logger.warning("the refit diverged", extra={"trial_id": best.trial_id, "epochs": epochs})
        return None
    logger.info(
        "configuration refit on every training row",
        extra={"trial_id": best.trial_id, "epochs": epochs, "rows": len(folds.x)},
    )
    return Refit(
        model=model,
        trial_id=best.trial_id,
        epochs=epochs,
        rows=len(folds.x),
        seconds=time.monotonic() - started,
    )
