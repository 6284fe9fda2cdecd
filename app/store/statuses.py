"""Each table's status, a StrEnum stored as its string: apart from the models, so that a
module that only names a status (a route's query parameter, a worker's outcome) imports no
SQLAlchemy."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class TrialStatus(enum.StrEnum):
    """KerasTuner's own trial states."""

    RUNNING = "RUNNING"
    IDLE = "IDLE"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    INVALID = "INVALID"
    STOPPED = "STOPPED"

    def is_finished(self) -> bool:
        return self not in (TrialStatus.RUNNING, TrialStatus.IDLE)


class SlotStatus(enum.StrEnum):
    OPEN = "open"  # waiting for a worker (or for one to replace a dead one)
    RUNNING = "running"
    DONE = "done"  # its tuner was told by the oracle that the search is over
    FAILED = "failed"  # its tuner process died on every attempt


class JobEnd(enum.StrEnum):
    """Why a finished job ended (jobs.stop_reason), written with its final status."""

    COMPLETED = "completed"  # the oracle ran out of trials
    TIME_BUDGET = "time_budget"  # max_runtime_s ran out after at least one trial completed
    CANCELLED = "cancelled"
    FAILED = "failed"
