"""The Pareto front of a multi-objective job (its `objective` a list), read from its trials.

Each COMPLETED trial of such a job carries its objective values (`trials.objectives`,
written by the search); the front is computed here, in Python (app.search.pareto), from
one query of the job's completed trials. A job's `best` is the front's trial with the
best first objective (ties broken by the next objectives), the one the search exports as
its best model. `job` is a row read through app.store.reads.readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select

from app.search.pareto import best_of, non_dominated
from app.store.models import Trial, TrialStatus

TRIALS = Trial.__table__

_COMPLETED = (
    select(TRIALS)
    .where(
        TRIALS.c.job_id == bindparam("job_id"),
        TRIALS.c.status == TrialStatus.COMPLETED,
        TRIALS.c.objectives.is_not(None),
    )
    # KerasTuner's trial ids are zero-padded counts: this is the order they were created.
    .order_by(TRIALS.c.trial_id)
)


def job_objectives(job: Any) -> list[dict[str, Any]] | None:
    """The job's objectives, `[{name, direction}]`, when it has a list of them; else None."""
    objective = (job.spec or {}).get("objective")
    return objective if isinstance(objective, list) else None


def _points(
    rows: Sequence[Row[Any]], objectives: list[dict[str, Any]]
) -> tuple[dict[int, list[float | None]], list[str]]:
    names = [o["name"] for o in objectives]
    points = {
        index: [(row.objectives or {}).get(name) for name in names]
        for index, row in enumerate(rows)
    }
    return points, [o["direction"] for o in objectives]


def pareto_front(db: Connection, job: Any) -> list[Row[Any]]:
    """The job's non-dominated completed trials, in creation order ([] for a job with one
    objective)."""
    objectives = job_objectives(job)
    if objectives is None:
        return []
    rows = db.execute(_COMPLETED, {"job_id": job.id}).all()
    points, directions = _points(rows, objectives)
    return [rows[index] for index in non_dominated(points, directions)]


def front_best(db: Connection, job: Any) -> Row[Any] | None:
    """The front's trial with the best first objective, or None before one completed."""
    objectives = job_objectives(job)
    if objectives is None:
        return None
    rows = db.execute(_COMPLETED, {"job_id": job.id}).all()
    points, directions = _points(rows, objectives)
    index = best_of(points, directions)
    return None if index is None else rows[index]
