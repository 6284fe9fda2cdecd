"""What a finished search adds to its job: the baselines and the best model's test score.

Run once, by the process that saw the search end (the single search process, or a
parallel job's chief), after the best model is exported; written to the job's row in one
transaction fenced on the lease, like the recorder's writes. A resumed search that
finds the oracle already done runs it again, with the same rows and the same result.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

from app.search.spec import ResolvedSpec
from app.store.db import write_session
from app.store.job_files import BEST_MODEL_FILE
from app.store.models import Dataset, Job
from app.store.slot_queue import holds
from tuner_jobs.search.baselines import score_baselines
from tuner_jobs.search.best_model import best_completed_trial, export_best_model
from tuner_jobs.search.cross_validation import Refit, refit
from tuner_jobs.search.data import TrainingData
from tuner_jobs.search.holdout import holdout_metrics
from tuner_jobs.search.model_export import finish_model_card
from tuner_jobs.search.recorder import LeaseLost, TrialRecorder
from tuner_jobs.search.recorder import finite as _finite

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


def baselines_of(data: TrainingData, spec: ResolvedSpec, dataset: Dataset) -> dict[str, Any]:
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


def evaluate_and_record(
    tuner: Any, data: TrainingData, spec: ResolvedSpec, dataset: Dataset, recorder: TrialRecorder
) -> None:
    """Refit a cross-validated job's best configuration (and export it as the best model),
    score the baselines and the best model's test rows, and write both to the job."""
    started = time.monotonic()
    refitted = _refit(tuner, data, spec)
    baselines = baselines_of(data, spec, dataset)
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
    claim = recorder.claim
    with write_session(recorder.engine) as session:
        if not holds(session=session, claim=claim):
            raise LeaseLost(f"job {claim.job_id} is no longer held by {claim.worker_id}")
        session.execute(
            update(Job)
            .where(Job.id == claim.job_id)
            .values(baselines=baselines, test_metrics=metrics)
        )
    # The model card on disk (written with the model) gains the test score and baselines:
    # here, so both the one-process runner and the parallel chief do it.
    finish_model_card(tuner, Path(tuner.directory) / BEST_MODEL_FILE)
    logger.info(
        "baselines and test score recorded",
        extra={"job_id": claim.job_id, "seconds": round(time.monotonic() - started, 2)},
    )
