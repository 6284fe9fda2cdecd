"""The per-key cap on jobs waiting or running (TUNER_MAX_JOBS_PER_KEY): with fair share in
the claim (app.store.queue.claim_job) it keeps one key from filling the queue for everyone."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ProblemError
from app.store.models import Job, JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def active_jobs(*, session: Session, owner: str | None) -> int:
    """Queued and running jobs of `owner` (None: the service runs without keys)."""
    query = select(func.count(Job.id)).where(
        Job.status.in_(ACTIVE), Job.owner.is_not_distinct_from(owner)
    )
    return session.scalar(query) or 0


def check_job_quota(*, session: Session, owner: str | None, max_jobs: int) -> None:
    """429 when `owner` already has `max_jobs` jobs queued or running. Read in the submitting
    transaction: on SQLite (BEGIN IMMEDIATE) exact; on PostgreSQL two racing submissions may
    both pass, so the cap can be exceeded by the number of concurrent submissions."""
    active = active_jobs(session=session, owner=owner)
    if active >= max_jobs:
        raise ProblemError(
            429,
            f"this API key has {active} jobs queued or running, the most allowed "
            f"(TUNER_MAX_JOBS_PER_KEY={max_jobs}); wait for some to finish or cancel some",
            title="Too many jobs",
            headers={"Retry-After": "60"},
        )
