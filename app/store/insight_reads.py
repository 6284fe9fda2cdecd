"""A job's hyperparameter importances (app.search.importance), read from its scored trials
and cached per process until the job has new ones. `job` is a row read through
app.store.reads.readable."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, select

from app.search.importance import (
    MIN_TRIALS,
    Importance,
    ImportanceCache,
    ScoredTrial,
    hyperparameter_importance,
    too_few,
)
from app.store.reads import TRIALS, JobRow, maximize
from app.store.statuses import TrialStatus

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


def job_importance(db: Connection, job: JobRow) -> Importance:
    """The job's importances; a 409 below MIN_TRIALS scored trials, counted before any
    trial is loaded."""
    count, latest = db.execute(_VERSION, {"job_id": job.id}).one()
    if count < MIN_TRIALS:
        raise too_few(count)
    version = (count, latest)
    cached = _cache.get(job.id, version)
    if cached is not None:
        return cached
    rows = db.execute(_POINTS, {"job_id": job.id}).all()
    trials = [ScoredTrial(hyperparameters=row.hyperparameters, score=row.score) for row in rows]
    found = hyperparameter_importance(job.search_space, trials, maximize=maximize(job))
    _cache.put(job.id, version, found)
    return found
