"""When a job's search must stop: its first start plus its time budget, less the share of
the budget kept for the end phase (app.search.training_length). Read from the job's row
each time it is needed, not once, so that a budget changed while the job runs
(PATCH /jobs/{id}) is the one obeyed, by the supervisor (at each heartbeat) and by the
search process (when it is stopped) alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import Job, utcnow

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


def job_search_ends_at(*, session: Session, job_id: str) -> datetime | None:
    row = session.execute(
        select(Job.started_at, BUDGET_S, END_PHASE_S).where(Job.id == job_id)
    ).one_or_none()
    return None if row is None else search_ends_at(*row)


def job_start_and_spec(*, session: Session, job_id: str) -> tuple[datetime | None, dict[str, Any]]:
    """The job's first start and its stored spec: what its supervisor plans the search's
    deadline from (raises NoResultFound once the job is gone)."""
    row = session.execute(select(Job.started_at, Job.spec).where(Job.id == job_id)).one()
    return row.started_at, row.spec


def search_budget_spent(*, session: Session, job_id: str, slack_s: float) -> bool:
    """Whether the job's search must have stopped by now (within `slack_s`), as its row says:
    the budget may have changed since the search process read its spec."""
    ends_at = job_search_ends_at(session=session, job_id=job_id)
    return ends_at is not None and utcnow() >= ends_at - timedelta(seconds=slack_s)
