"""What a finished search adds to its job: the baselines, the best model's test score, the
ensemble of its best trials, and a verdict when a baseline beat the job's model.

Run once, by the process that saw the search end (the single search process, or a
parallel job's chief), after the best model is exported; written to the job's row in one
transaction fenced on the lease, like the recorder's writes. A resumed search that
finds the oracle already done runs it again, with the same rows and the same result.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.search.spec import ResolvedSpec
from app.store.job_files import BEST_MODEL_FILE, BEST_TRIAL_DIR
from app.store.search_values import SearchDataset
from tuner_jobs.search.baselines import score_baselines
from tuner_jobs.search.best_model import best_completed_trial, export_best_model
from tuner_jobs.search.cross_validation import Refit, refit
from tuner_jobs.search.data import TrainingData
from tuner_jobs.search.ensemble_model import build_ensemble
from tuner_jobs.search.holdout import holdout_metrics
from tuner_jobs.search.model_export import finish_model_card
from tuner_jobs.search.recorder import claim_held
from tuner_jobs.search.recorder import finite as _finite

if TYPE_CHECKING:
    from app.store.search_gateway import SearchDatabase

logger = logging.getLogger(__name__)


def _refit(tuner: Any, data: TrainingData, spec: ResolvedSpec) -> Refit | None:
    """With cross-validation: the best configuration refit on every training row, saved
    over the best fold's model as the job's best model (what /model and /predict serve)."""
    if getattr(tuner, "folds", None) is None:
        return None
    best = best_completed_trial(tuner.oracle)
    if best is None:
        return None
    refitted = refit(tuner, best, spec.tuner.rng_seed)
    if refitted is not None:
        path = Path(tuner.directory) / BEST_MODEL_FILE  # the job's directory (runner)
        export_best_model(tuner, data.preprocessor, path, best, trained=refitted.model)
    return refitted


def baselines_of(data: TrainingData, spec: ResolvedSpec, dataset: SearchDataset) -> dict[str, Any]:
    """The baselines' scores, JSON-ready; a baseline that cannot be fitted on these rows
    (a class missing from the training rows, say) says why instead of failing the job."""
    try:
        scores = score_baselines(
            columns=dataset.columns,
            frame=data.frame,
            y=data.y,
            task=dataset.task,
            classes=dataset.classes,
            split=data.split,
            objective=spec.primary_objective.name,
            seed=spec.tuner.rng_seed,
        )
    except ValueError as exc:
        logger.warning("baselines could not be scored", extra={"error": str(exc)})
        return {"error": str(exc)}
    return {
        name: {
            key: [_finite(v) for v in value] if isinstance(value, list) else _finite(value)
            for key, value in result.items()
        }
        for name, result in scores.items()
    }


class BaselinesBeside:
    """The baselines, scored on a thread of their own from the search's start: they need no
    search result, so the end phase, on the job's critical path, only collects them. A
    process that ends before the end phase (recycled, stopped) leaves the thread behind."""

    def __init__(self, data: TrainingData, spec: ResolvedSpec, dataset: SearchDataset) -> None:
        self.seconds: float | None = None  # how long they took, once scored
        self._scores: Future[dict[str, Any]] = Future()
        threading.Thread(
            target=self._score, args=(data, spec, dataset), name="baselines", daemon=True
        ).start()

    def _score(self, data: TrainingData, spec: ResolvedSpec, dataset: SearchDataset) -> None:
        started = time.monotonic()
        try:
            scores = baselines_of(data, spec, dataset)
        except BaseException as exc:  # raised again where the end phase collects them
            self.seconds = time.monotonic() - started
            self._scores.set_exception(exc)
            return
        self.seconds = time.monotonic() - started  # before the result: the end reads both
        self._scores.set_result(scores)

    def result(self) -> dict[str, Any]:
        return self._scores.result()


# How the verdict names each baseline, by task.
BASELINE_NAMES = {
    ("linear", "classification"): "a logistic regression",
    ("linear", "regression"): "a ridge regression",
    ("gradient_boosting", "classification"): "gradient boosting",
    ("gradient_boosting", "regression"): "gradient boosting",
}


def _number(value: float, other: float) -> str:
    """`value` with enough decimals (3 to 6) to differ from `other` when they do."""
    for places in range(3, 7):
        if f"{value:.{places}f}" != f"{other:.{places}f}":
            break
    return f"{value:.{places}f}"


def verdict_of(
    baselines: dict[str, Any],
    model_score: float | None,
    *,
    objective: str,
    maximize: bool,
    task: str,
    folds: bool,
) -> str | None:
    """One line when the better baseline scores strictly above the job's model (below, for
    an objective to minimise) with the same objective on the same rows; None otherwise."""
    if model_score is None or not math.isfinite(model_score):
        return None
    scored = [
        (result["score"], name)
        for name, result in baselines.items()
        if isinstance(result, dict) and _finite(result.get("score")) is not None
    ]
    if not scored:
        return None
    score, name = (max if maximize else min)(scored)
    if not (score > model_score if maximize else score < model_score):
        return None
    rows = "on the same folds" if folds else "on the same validation rows"
    side = "above" if maximize else "below"
    return (
        f"{BASELINE_NAMES.get((name, task), name)} scores {_number(score, model_score)} "
        f"({objective}) {rows}, {side} this search's {_number(model_score, score)}"
    )


def _model_score(tuner: Any, ensemble: dict[str, Any] | None) -> float | None:
    """The job's model's score: its ensemble's when used, else the best trial's."""
    if ensemble is not None and ensemble.get("used"):
        return _finite(ensemble.get("score"))
    best = best_completed_trial(tuner.oracle)
    return None if best is None else _finite(best.score)


def evaluate_and_record(
    tuner: Any,
    data: TrainingData,
    spec: ResolvedSpec,
    dataset: SearchDataset,
    database: SearchDatabase,
    baselines_beside: BaselinesBeside | None = None,
) -> None:
    """Refit a cross-validated job's best configuration (and export it as the best model),
    score the baselines (or collect them, scored beside the search) and the best model's
    test rows, select the ensemble (exported as the job's model when it scores higher), and
    write them and the verdict to the job."""
    started = time.monotonic()
    refitted = _refit(tuner, data, spec)
    refit_s = time.monotonic() - started
    if baselines_beside is None:
        baselines = baselines_of(data, spec, dataset)
    else:
        baselines = baselines_beside.result()
    # What the baselines cost the end phase: their whole time, or the wait for the thread.
    baselines_s = time.monotonic() - started - refit_s
    metrics = holdout_metrics(
        tuner,
        data,
        task=dataset.task,
        classes=dataset.classes,
        objective=spec.primary_objective.name,
        model=None if refitted is None else refitted.model,
    )
    if metrics is not None and refitted is not None:
        metrics["refit"] = {"epochs": refitted.epochs, "rows": refitted.rows}
    before_ensemble = time.monotonic()
    try:
        ensemble = build_ensemble(tuner, data, spec, refitted)
    except Exception:  # an ensemble that cannot be built never costs the job its best trial
        logger.warning("the ensemble failed; the best trial stays the job's model", exc_info=True)
        ensemble = None
    ensemble_s = time.monotonic() - before_ensemble
    objective = spec.primary_objective
    verdict = verdict_of(
        baselines,
        _model_score(tuner, ensemble),
        objective=objective.name,
        maximize=objective.direction == "max",
        task=dataset.task,
        folds=bool(data.folds),
    )
    with claim_held():
        database.record_evaluation(
            baselines=baselines, test_metrics=metrics, ensemble=ensemble, verdict=verdict
        )
    # The model card on disk (written with the model) gains the test score and baselines:
    # here, so both the one-process runner and the parallel chief do it. With an ensemble
    # used, the best trial's card (in best_trial/) too.
    directory = Path(tuner.directory)
    finish_model_card(tuner, directory / BEST_MODEL_FILE)
    if (directory / BEST_TRIAL_DIR / BEST_MODEL_FILE).is_file():
        finish_model_card(tuner, directory / BEST_TRIAL_DIR / BEST_MODEL_FILE)
    logger.info(
        "end of search recorded: refit, baselines, test score, ensemble",
        extra={
            "job_id": database.claim.job_id,
            "seconds": round(time.monotonic() - started, 2),
            "refit_s": round(refit_s, 2),
            "baselines_s": round(baselines_s, 2),
            "baselines_beside_s": (
                None
                if baselines_beside is None or baselines_beside.seconds is None
                else round(baselines_beside.seconds, 2)
            ),
            "ensemble_s": round(ensemble_s, 2),
            "ensemble_used": bool(ensemble and ensemble["used"]),
            "verdict": verdict,
        },
    )
