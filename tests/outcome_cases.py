"""What the outcome-rule tables share: heartbeats, a clock, and how a search process ended."""

from __future__ import annotations

from app.store.queue import Heartbeat
from tuner_jobs.search.child import ChildReport, Outcome
from tuner_jobs.worker.outcomes import ChildExit

HELD = Heartbeat(held=True)
CANCELLED = Heartbeat(held=True, cancel_requested=True)
LOST = Heartbeat(held=False, cancel_requested=True)
NOW = 1000.0


def reported(outcome: Outcome, message: str | None = None, exitcode: int | None = 0) -> ChildExit:
    return ChildExit(ChildReport(outcome, message), exitcode)


def died(exitcode: int | None = -9) -> ChildExit:
    """A process that ended without a report (killed, out of memory, a crash in C)."""
    return ChildExit(None, exitcode)
