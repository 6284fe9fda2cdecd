"""A multi-objective job's Pareto front, and the model of any trial that kept one."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep
from app.api.problems import problem_responses
from app.api.responses import model_response
from app.errors import ProblemError
from app.schemas import ParetoFront, ParetoTrial
from app.store.pareto_reads import job_objectives, pareto_front
from app.store.reads import get_job
from app.store.trial_models import trial_model_file

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}/pareto", response_model=ParetoFront, responses=problem_responses(404, 409))
def read_pareto(session: SessionDep, owner: OwnerDep, job_id: str) -> Response:
    """The non-dominated completed trials of a job whose objective is a list (409 for a
    single-objective job: its front is its best trial, GET /jobs/{id}/best)."""
    db = session.connection()
    job = get_job(db, job_id, owner)
    objectives = job_objectives(job)
    if objectives is None:
        raise ProblemError(
            409,
            f"job {job_id!r} has a single objective, so no Pareto front: its best trial is "
            "GET /jobs/{id}/best (submit objective as a list, with tpe or nsga2, for a front)",
            title="Not a multi-objective job",
        )
    items = [
        ParetoTrial(
            trial_id=row.trial_id,
            objectives=row.objectives,
            hyperparameters=row.hyperparameters,
        )
        for row in pareto_front(db, job)
    ]
    return model_response(ParetoFront(items=items, objectives=objectives))


@router.get(
    "/{job_id}/trials/{trial_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **problem_responses(404)},
)
def download_trial_model(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, job_id: str, trial_id: str
) -> FileResponse:
    """One trial's model as a .keras file that takes raw rows: each Pareto-front trial of a
    multi-objective job keeps one, and the best trial of any job."""
    db = session.connection()
    job = get_job(db, job_id, owner)
    path = trial_model_file(db, settings, job, trial_id, owner)
    return FileResponse(
        path, media_type="application/octet-stream", filename=f"{job.id}-trial-{trial_id}.keras"
    )
