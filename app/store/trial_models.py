"""Which model file answers for one trial of a job (GET .../trials/{trial_id}/model, and
POST .../predict?trial_id=)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from app.errors import ProblemError
from app.settings import Settings
from app.store.job_files import best_trial_file, trial_model_path
from app.store.reads import best_trial, get_trial


def trial_model_file(
    db: Connection, settings: Settings, job: Any, trial_id: str, owner: str | None
) -> Path:
    """Trial `trial_id`'s model: its own file (a Pareto-front trial's, written by
    tuner_jobs.search.front_models), or the best trial's model (the job's, unless that is
    its ensemble) for the best trial. 404 for an
    unknown trial, and for one whose model was not kept (the search prunes the others)."""
    trial = get_trial(db, job, trial_id, owner)
    path = trial_model_path(settings, job.id, trial.trial_id)
    if path.is_file():
        return path
    best = best_trial(db, job)
    if best is not None and best.trial_id == trial.trial_id:
        path = best_trial_file(settings, job.id)
        if path.is_file():
            return path
    raise ProblemError(
        404,
        f"trial {trial_id!r} of job {job.id!r} has no model: a job keeps its best trial's, "
        "and a multi-objective job each Pareto-front trial's (GET /jobs/{id}/pareto)",
        title="No model for this trial",
    )
