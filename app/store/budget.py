"""When a job's search must stop: its first start plus its time budget, less the share of
the budget kept for the end phase (app.search.training_length). Read from the job's row
each time it is needed, not once, so that a budget changed while the job runs
(PATCH /jobs/{id}) is the one obeyed: the supervisor reads it at each heartbeat, decides,
and tells its search process why it stops (tuner_jobs.search.life_cycle)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import Job

# The stored spec's fields the deadline is made of, as SQL expressions of the jobs row.
BUDGET_S = Job.spec["max_runtime_s"].as_float()
END_PHASE_S = Job.spec[("derivation", "end_phase_s")].as_float()


def search_ends_at(
    started_at: datetime | None, budget_s: float | None, end_phase_s: float | None
) -> datetime | None:
    """None: no budget (or a job not started yet)."""
    if budget_s is None or started_at is None:
        return None
    return started_at + timedelta(seconds=budget_s - (end_phase_s or 0.0))


def job_start_and_spec(*, session: Session, job_id: str) -> tuple[datetime | None, dict[str, Any]]:
    """The job's first start and its stored spec: what its supervisor plans the search's
    deadline from (raises NoResultFound once the job is gone)."""
    row = session.execute(select(Job.started_at, Job.spec).where(Job.id == job_id)).one()
    return row.started_at, row.spec
