"""Insights into a job's trials: which hyperparameters mattered (app.search.importance), and
a multi-objective job's Pareto front."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.auth import OwnerDep
from app.api.deps import SessionDep
from app.api.problems import model_response, problem_responses
from app.errors import ProblemError
from app.schemas import ParetoFront, ParetoTrial
from app.search.importance import Importance
from app.store.insight_reads import job_importance
from app.store.pareto_reads import job_objectives, pareto_front
from app.store.reads import get_job

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get(
    "/{job_id}/importance", response_model=Importance, responses=problem_responses(404, 409)
)
def read_importance(session: SessionDep, owner: OwnerDep, job_id: str) -> Importance:
    """How much each hyperparameter mattered to the score (Optuna's PED-ANOVA over the
    completed trials), summing to 1; 409 below 5 completed trials. Cached until the job
    has new trials."""
    db = session.connection()
    return job_importance(db, get_job(db, job_id, owner))


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
