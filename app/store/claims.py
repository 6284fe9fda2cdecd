"""What a worker holds while it runs a job: its claim on the job (or on one tuner slot of a
parallel job), and the error the store raises once that claim is no longer its own.

No SQL here: the search process (tuner_jobs.search, which must not import SQLAlchemy)
carries these values; the queue SQL that issues and fences them is app.store.queue and
app.store.slot_queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    worker_id: str
    # The worker whose lease on the running job had expired, when this claim took it over
    # (for the log; a claim is the same claim whoever held the job before).
    taken_over_from: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SlotClaim:
    """A lease on one tuner slot of a parallel job (see app.store.models.JobSlot)."""

    job_id: str
    slot: int
    attempt: int
    worker_id: str
    chief_attempt: int
    chief_address: str
    # The worker whose lease on the slot had expired, when this claim took it over.
    taken_over_from: str | None = field(default=None, compare=False)

    @property
    def tuner_id(self) -> str:
        return f"tuner{self.slot}"


class ClaimLost(Exception):
    """The claim is no longer this worker's (another worker took the job over, or the job
    ended), or the database stayed away longer than the lease: nothing more may be written
    under it."""
