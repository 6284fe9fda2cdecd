"""The reads a warm start makes at submission (app.search.warm_start_resolution.WarmStartSource),
each through `readable`: another key's job is never loaded, so it is as absent as an id
nobody has."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from app.search.warm_start_resolution import SourceJob, SourceTrial
from app.store.db import storable
from app.store.models import Dataset, Job, JobStatus, TrialStatus
from app.store.reads import JOBS, TRIALS, readable


def _source(row: Any) -> SourceJob:
    objective = (row.spec or {}).get("objective") or {}
    if isinstance(objective, list):  # a multi-objective job: its score is the first one's
        objective = objective[0] if objective else {}
    direction = "max" if objective.get("direction") == "max" else "min"
    return SourceJob(id=row.id, objective=str(objective.get("name")), direction=direction)


class WarmStartReads:
    """The caller's jobs, for a new job on `dataset_id` (one the caller may read)."""

    def __init__(self, db: Connection, owner: str | None, dataset_id: str) -> None:
        self.db = db
        self.owner = owner
        self.dataset_id = dataset_id

    def jobs(self, ids: Sequence[str]) -> dict[str, SourceJob]:
        wanted = [job_id for job_id in ids if storable(job_id)]
        if not wanted:
            return {}
        rows = self.db.execute(
            readable(Job, self.owner, JOBS.c.id, JOBS.c.spec).where(JOBS.c.id.in_(wanted))
        ).all()
        return {row.id: _source(row) for row in rows}

    def recent_jobs(self, limit: int) -> list[SourceJob]:
        # The same data: the same file (sha256) with the same target column.
        new = select(Dataset.sha256, Dataset.target).where(Dataset.id == self.dataset_id).subquery()
        rows = self.db.execute(
            readable(Job, self.owner, JOBS.c.id, JOBS.c.spec)
            .join(Dataset, Dataset.id == JOBS.c.dataset_id)
            .join(new, (Dataset.sha256 == new.c.sha256) & (Dataset.target == new.c.target))
            .where(JOBS.c.status == JobStatus.SUCCEEDED)
            .order_by(JOBS.c.created_at.desc(), JOBS.c.id)
            .limit(limit)
        ).all()
        return [_source(row) for row in rows]

    def best_trials(self, job: SourceJob, limit: int) -> list[SourceTrial]:
        # The job was read through `readable` just before: its trials are the caller's.
        score = TRIALS.c.score.desc() if job.direction == "max" else TRIALS.c.score.asc()
        rows = self.db.execute(
            select(TRIALS.c.trial_id, TRIALS.c.score, TRIALS.c.hyperparameters)
            .where(
                TRIALS.c.job_id == job.id,
                TRIALS.c.status == TrialStatus.COMPLETED,
                TRIALS.c.score.is_not(None),
            )
            .order_by(score, TRIALS.c.trial_id)
            .limit(limit)
        ).all()
        return [
            SourceTrial(trial_id=row.trial_id, score=row.score, hyperparameters=row.hyperparameters)
            for row in rows
        ]
