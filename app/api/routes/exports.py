"""Exports: a job's trials and a trial's curve as CSV, its search space for KerasTuner."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.auth import OwnerDep
from app.api.deps import SessionDep
from app.search.keras_tuner_config import keras_tuner_config
from app.store.csv_exports import metrics_csv, safe_filename, trials_csv
from app.store.reads import get_job, get_trial

# Paths that end in a file name (`trials.csv`) never collide with `trials/{trial_id}`:
# a path parameter does not match across `/`, so this router may sit beside jobs.router.
router = APIRouter(prefix="/jobs", tags=["exports"])

SpaceFormat = Literal["json", "keras_tuner"]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{job_id}/trials.csv", response_class=Response, responses=CSV_RESPONSE)
def export_trials(session: SessionDep, owner: OwnerDep, job_id: str) -> Response:
    """Every trial as a CSV row: outcome, one column per hyperparameter and final metric."""
    job = get_job(session.connection(), job_id, owner)
    return _csv(trials_csv(session, job), safe_filename("job", job.id, "trials.csv"))


@router.get(
    "/{job_id}/trials/{trial_id}/metrics.csv", response_class=Response, responses=CSV_RESPONSE
)
def export_trial_metrics(
    session: SessionDep, owner: OwnerDep, job_id: str, trial_id: str
) -> Response:
    """One trial's per-epoch curve as CSV: epoch, loss, val_loss, metrics, learning_rate."""
    db = session.connection()
    job = get_job(db, job_id, owner)
    trial = get_trial(db, job, trial_id, owner)
    return _csv(
        metrics_csv(session, trial),
        safe_filename("job", job.id, "trial", trial.trial_id, "metrics.csv"),
    )


@router.get("/{job_id}/search_space", response_model=dict[str, Any])
def export_search_space(
    session: SessionDep,
    owner: OwnerDep,
    job_id: str,
    space_format: Annotated[
        SpaceFormat,
        Query(
            alias="format",
            description="`json`: the effective space as stored; `keras_tuner`: "
            "`HyperParameters.get_config()`, for `keras_tuner.HyperParameters.from_config`",
        ),
    ] = "json",
) -> dict[str, Any]:
    """The job's effective search space, as stored or as KerasTuner's own config."""
    job = get_job(session.connection(), job_id, owner)
    if space_format == "keras_tuner":
        return keras_tuner_config(job.search_space)
    return job.search_space
