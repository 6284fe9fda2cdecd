"""The API's writes to the jobs table: queue one, change its name or spec, delete a finished
one. Each takes the session (or connection) as a keyword and never commits: the route's unit
of work does (app.api.deps)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from app.store.models import Job, JobStatus, new_id, utcnow
from app.store.reads import JOBS

FINISHED = [status for status in JobStatus if status.is_finished()]


def insert_job(
    *,
    db: Connection,
    owner: str | None,
    name: str | None,
    notes: str | None,
    dataset_id: str,
    spec: dict[str, Any],
    search_space: dict[str, Any],
    trials_planned: int,
) -> Row[Any]:
    """A queued job; returns its row as app.store.reads reads it."""
    row = {
        "id": new_id(),
        "owner": owner,
        "name": name,
        "notes": notes,
        "dataset_id": dataset_id,
        "status": JobStatus.QUEUED,
        "spec": spec,
        "search_space": search_space,
        "trials_planned": trials_planned,
        "attempt": 0,
        "cancel_requested": False,
        "created_at": utcnow(),
    }
    # A plain INSERT, not the ORM's unit of work: its flush was the largest part of a
    # submission's CPU after the framework's (docs/benchmarks.md, item 5).
    return db.execute(insert(JOBS).returning(*JOBS.c), [row]).one()


def set_job_fields(*, session: Session, job_id: str, values: dict[str, Any]) -> None:
    """Set the job's `name`, `notes` and/or `spec` (the caller checked what may change)."""
    if values:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def delete_finished_job(*, session: Session, job_id: str) -> bool:
    """Delete the job if it has finished (checked in the DELETE itself, so a job a worker
    claims meanwhile is never deleted under it); whether it was."""
    gone = session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(FINISHED)))
    return bool(gone.rowcount)
