"""Greedy ensemble selection over a search's trials (Caruana et al., 2004), on the
predictions each trial left for rows it never trained on.

Every trial keeps its best epoch's predictions (tuner_jobs.search.cross_validation): of
each fold's validation rows, put together into one out-of-fold prediction per training
row, or of the one split's validation rows. After the search, selection starts from an
empty ensemble and adds, `ROUNDS` times, the trial (again, if it is already in: with
replacement) whose addition scores best with the objective's metric, computed as Keras
computes it and over the same folds as a trial's score; the ensemble kept is the best of
those rounds, the first to reach that score. A trial's weight is the share of the rounds
it was picked in. This is what auto-sklearn and AutoGluon do after their searches; like
auto-sklearn's `ensemble_nbest`, only the best trials are candidates (`pool_size`).

No TensorFlow here: the predictions are numpy arrays, the metrics numpy functions.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# In each trial's KerasTuner directory: the best epoch's predictions of its validation rows.
PREDICTIONS_FILE = "predictions.npy"
# Caruana's rounds: AutoGluon's default is 25 (auto-sklearn's 50), enough for weights in
# steps of 4 % with the few members a small search has.
ROUNDS = 25
# Keras clips probabilities this far from 0 and 1 before the log of its crossentropies.
EPSILON = 1e-7


def ensemble_members(tuner: Any) -> int | None:
    """The most members the job's ensemble may have (training.ensemble), or None: no
    ensemble (off, a multi-objective job, which keeps its Pareto front instead, or an
    objective on a training metric, which validation predictions cannot score)."""
    context = getattr(tuner, "export_context", None)
    spec = getattr(context, "spec", None)
    if spec is None or len(spec.objectives) > 1:
        return None
    if not spec.primary_objective.name.startswith("val_"):
        return None
    return spec.training.ensemble_members


def pool_size(max_members: int) -> int:
    """How many of the best trials are candidates (and keep what their members need)."""
    return min(2 * max_members, 50)


def save_predictions(trial_dir: Path, predictions: np.ndarray) -> None:
    """Written whole, then moved into place (a reader never sees half an array)."""
    final = trial_dir / PREDICTIONS_FILE
    partial = trial_dir / f".{PREDICTIONS_FILE}.partial.npy"
    np.save(partial, predictions.astype("float32"))
    os.replace(partial, final)


def load_predictions(trial_dir: Path, rows: int) -> np.ndarray | None:
    """The trial's predictions when they are there, for `rows` rows, and finite."""
    try:
        predictions = np.load(trial_dir / PREDICTIONS_FILE)
    except (OSError, ValueError):
        return None
    if predictions.ndim != 2 or len(predictions) != rows:
        return None
    return predictions if np.isfinite(predictions).all() else None


def metric_value(
    objective: str, y: np.ndarray, predicted: np.ndarray, *, regression: bool
) -> float:
    """`objective` (val_accuracy, val_loss, val_mae, val_mse) of `predicted` (a network's
    output: one sigmoid unit, one softmax unit per class, or the regression value) for
    targets `y`, as Keras computes it; loss is the compiled loss without its weight
    penalties: binary or sparse categorical crossentropy, or MSE for regression."""
    base = objective.removeprefix("val_")
    if base == "mae":
        return float(np.mean(np.abs(predicted[:, 0] - y)))
    if base == "mse" or (base == "loss" and regression):
        return float(np.mean((predicted[:, 0] - y) ** 2))
    one_unit = predicted.shape[-1] == 1
    if base == "accuracy":
        chosen = (predicted[:, 0] > 0.5) if one_unit else predicted.argmax(axis=-1)
        return float(np.mean(chosen.astype("int64") == y.astype("int64")))
    if base != "loss":
        raise ValueError(f"no ensemble metric for the objective {objective!r}")
    if one_unit:
        p = np.clip(predicted[:, 0], EPSILON, 1 - EPSILON)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = predicted / predicted.sum(axis=-1, keepdims=True)
    picked = np.clip(p[np.arange(len(y)), y.astype("int64")], EPSILON, 1 - EPSILON)
    return float(-np.mean(np.log(picked)))


def protocol_score(
    objective: str,
    y: np.ndarray,
    predicted: np.ndarray,
    parts: Sequence[np.ndarray],
    *,
    regression: bool,
) -> float:
    """The mean over `parts` (each fold's validation rows; one part: the split's) of the
    objective's value, as a trial's score and the baselines' are taken."""
    return float(
        np.mean(
            [
                metric_value(objective, y[rows], predicted[rows], regression=regression)
                for rows in parts
            ]
        )
    )


@dataclass(frozen=True)
class Selection:
    """Candidate index -> times picked (its weight: times / rounds), and the score."""

    counts: dict[int, int]
    score: float

    @property
    def weights(self) -> dict[int, float]:
        total = sum(self.counts.values())
        return {index: count / total for index, count in sorted(self.counts.items())}


def greedy_selection(
    predictions: Sequence[np.ndarray],
    score: Callable[[np.ndarray], float],
    *,
    maximize: bool,
    max_members: int,
    rounds: int = ROUNDS,
) -> Selection:
    """Caruana's forward selection with replacement over `predictions` (ranked best first:
    a tie goes to the earlier candidate), at most `max_members` distinct candidates."""
    if not predictions:
        raise ValueError("no candidates to select from")
    total = np.zeros_like(predictions[0], dtype="float64")
    counts: Counter[int] = Counter()
    best: Selection | None = None
    for round_ in range(1, rounds + 1):
        allowed = range(len(predictions)) if len(counts) < max_members else sorted(counts)
        pick, pick_score = -1, math.nan
        for index in allowed:
            value = score((total + predictions[index]) / round_)
            if not math.isfinite(value):
                continue
            if pick < 0 or (value > pick_score if maximize else value < pick_score):
                pick, pick_score = index, value
        if pick < 0:
            break  # no candidate scores a finite value
        total += predictions[pick]
        counts[pick] += 1
        if best is None or (pick_score > best.score if maximize else pick_score < best.score):
            best = Selection(dict(counts), pick_score)
    if best is None:
        raise ValueError("no candidate scores a finite value")
    return best
