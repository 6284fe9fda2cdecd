"""Insights into a job's trials: which hyperparameters mattered (app.search.importance)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import Connection, bindparam, func, select

from app.api.auth import OwnerDep
from app.api.deps import SessionDep
from app.api.problems import problem_responses
from app.search.importance import (
    MIN_TRIALS,
    Importance,
    ImportanceCache,
    ScoredTrial,
    hyperparameter_importance,
    too_few,
)
from app.store.models import TrialStatus
from app.store.reads import TRIALS, JobRow, get_job, maximize

router = APIRouter(prefix="/jobs", tags=["jobs"])

# One per process, shared by every app in it: it is keyed by job id, unique across databases.
_cache = ImportanceCache()

_SCORED = (
    TRIALS.c.job_id == bindparam("job_id"),
    TRIALS.c.status == TrialStatus.COMPLETED,
    TRIALS.c.score.is_not(None),
)
# What changes when the job has new trials: the cache's version of them.
_VERSION = select(func.count(TRIALS.c.id), func.max(TRIALS.c.finished_at)).where(*_SCORED)
_POINTS = select(TRIALS.c.hyperparameters, TRIALS.c.score).where(*_SCORED)


def _importance(db: Connection, job: JobRow) -> Importance:
    count, latest = db.execute(_VERSION, {"job_id": job.id}).one()
    if count < MIN_TRIALS:
        raise too_few(count)  # before loading any trial
    version = (count, latest)
    cached = _cache.get(job.id, version)
    if cached is not None:
        return cached
    rows = db.execute(_POINTS, {"job_id": job.id}).all()
    trials = [ScoredTrial(hyperparameters=row.hyperparameters, score=row.score) for row in rows]
    found = hyperparameter_importance(job.search_space, trials, maximize=maximize(job))
    _cache.put(job.id, version, found)
    return found


@router.get(
    "/{job_id}/importance", response_model=Importance, responses=problem_responses(404, 409)
)
def read_importance(session: SessionDep, owner: OwnerDep, job_id: str) -> Importance:
    """How much each hyperparameter mattered to the score (Optuna's PED-ANOVA over the
    completed trials), summing to 1; 409 below 5 completed trials. Cached until the job
    has new trials."""
    db = session.connection()
    return _importance(db, get_job(db, job_id, owner))
