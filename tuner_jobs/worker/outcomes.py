"""The supervisor's decisions, as pure functions: why a search is stopped, and what a search
process's end means for its job or its tuner slot.

Nothing here touches a process, the database or the clock: the supervisor gathers the facts
(the child's report, its exit code, the heartbeat, the time) and writes what these decide,
so each rule can be checked from a table of cases (tests/test_outcome_rules.py).
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass
from datetime import datetime

from app.store.models import JobStatus, SlotStatus, utcnow
from app.store.queue import Heartbeat
from app.store.statuses import JobEnd
from tuner_jobs.search.child import ChildReport, Outcome


class StopRequest(enum.StrEnum):
    """Why the supervisor asked a running search to stop at its next epoch."""

    LEASE_LOST = "lease_lost"  # another worker may own the job now
    CANCEL = "cancel"
    TIME_BUDGET = "time_budget"  # past the job's max_runtime_s
    SHUTDOWN = "shutdown"  # this worker is exiting; the job resumes elsewhere


@dataclass(frozen=True)
class ChildExit:
    """How a search process ended: its report (None when it died without one) and its exit
    code (None while a process that has reported is still exiting)."""

    report: ChildReport | None
    exitcode: int | None
    peak_rss_bytes: int | None = None  # the most it was seen to hold (see processes.py)
    memory_limit_bytes: int | None = None  # the machine's, its cgroup's or its RLIMIT_AS
    killed_by_worker: bool = False  # the supervisor itself sent the SIGKILL
    # The supervisor killed it for passing TUNER_SEARCH_RSS_CAP_MB (this many bytes).
    memory_cap_bytes: int | None = None
    # The container's count of out-of-memory kills rose while it lived (cgroup events).
    oom_killed: bool = False

    @property
    def outcome(self) -> Outcome | None:
        return None if self.report is None else self.report.outcome

    @property
    def message(self) -> str | None:
        return None if self.report is None else self.report.message


# A SIGKILL the worker did not send, to a process holding at least this share of its memory
# limit, is the kernel's OOM killer's (or a container's memory limit) all but certainly.
NEAR_MEMORY_LIMIT = 0.5


def death(ended: ChildExit) -> str:
    """How a process that said nothing ended, as the rest of "the search process ...": out of
    memory when that can be told (its worker's cap killed it, the container's OOM count
    rose, or it held most of its memory limit), else the signal that killed it or its exit
    code. A SIGKILL nobody in the worker sent is how the kernel's OOM killer ends a process,
    so even without that evidence it says so."""
    code = ended.exitcode
    if code is None or code >= 0:
        return f"died (exit code {code})"
    signum = -code
    peak, limit = ended.peak_rss_bytes, ended.memory_limit_bytes
    if ended.memory_cap_bytes is not None:
        return (
            f"was killed: out of memory at about {_size(peak or ended.memory_cap_bytes)} "
            f"(past its {_size(ended.memory_cap_bytes)} cap, TUNER_SEARCH_RSS_CAP_MB)"
        )
    if signum == signal.SIGKILL and ended.killed_by_worker:
        return "was killed (SIGKILL) by its worker"
    if signum == signal.SIGKILL:
        near_limit = peak is not None and limit is not None and peak >= NEAR_MEMORY_LIMIT * limit
        if peak is not None and (ended.oom_killed or near_limit):
            of_limit = f" of a {_size(limit)} limit" if limit is not None else ""
            return f"was killed: out of memory at about {_size(peak)}{of_limit}"
        seen = f"; its peak RSS was {_size(peak)}" if peak is not None else ""
        return f"was killed by signal 9 (SIGKILL), possibly out of memory{seen}"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = "unknown"
    return f"was killed by signal {signum} ({name})"


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def stop_request(
    beat: Heartbeat,
    *,
    shutting_down: bool,
    deadline: float | None,
    now: float,
    utc_now: datetime | None = None,
) -> StopRequest | None:
    """Checked at each heartbeat, first match wins: a lost lease, then a cancel, then the
    job's time budget (the heartbeat's reading of it; while the database is away, the
    `deadline` planned at the claim, on the same clock as `now`), then this worker's exit."""
    if not beat.held:
        return StopRequest.LEASE_LOST
    if beat.cancel_requested:
        return StopRequest.CANCEL
    if beat.budget_read:
        # The budget as the job's row says now (PATCH may have changed it).
        if beat.search_ends_at is not None and (utc_now or utcnow()) >= beat.search_ends_at:
            return StopRequest.TIME_BUDGET
    elif deadline is not None and now > deadline:
        return StopRequest.TIME_BUDGET
    if shutting_down:
        return StopRequest.SHUTDOWN
    return None


def lease_while_away(*, renewed_at: float, now: float, lease_s: float) -> Heartbeat:
    """The heartbeat assumed while the database is away: the lease stays ours until it would
    have expired; past that point another worker may have claimed the job."""
    return Heartbeat(held=now - renewed_at < lease_s)


def search_goes_on(ended: ChildExit, reason: StopRequest | None) -> bool:
    """A search process that recycled itself is replaced under the same lease, unless the
    search was being stopped: then its end is recorded like any other."""
    return ended.outcome is Outcome.RECYCLE and reason is None


class JobAction(enum.StrEnum):
    FINISH = "finish"  # write the job's final status
    REQUEUE = "requeue"  # hand it back to the queue: it resumes from its project directory
    LEAVE = "leave"  # the lease is lost: the job is another worker's, write nothing


@dataclass(frozen=True)
class JobRecord:
    action: JobAction
    status: JobStatus | None = None  # set when action is FINISH
    error: str | None = None
    stop_reason: JobEnd | None = None  # set when action is FINISH


NO_TRIAL_IN_BUDGET = "time budget: max_runtime_s ran out before any trial completed"


def job_record(
    ended: ChildExit,
    reason: StopRequest | None,
    *,
    attempt: int,
    max_attempts: int,
    completed_trials: int | None = 0,
) -> JobRecord:
    """What a job's search process ending means for the job. The child's own success wins
    over a stop asked too late to matter; a stop the supervisor asked for wins over the
    child's failure; a process that died without a word is retried until max_attempts.

    A time budget is a normal ending: the job succeeded with what its COMPLETED trials
    found (`completed_trials`, counted by the supervisor; None when it could not be read),
    and failed only when none completed."""
    if reason is StopRequest.LEASE_LOST or ended.outcome is Outcome.LEASE_LOST:
        return JobRecord(JobAction.LEAVE)
    if ended.outcome is Outcome.SUCCEEDED:
        return JobRecord(JobAction.FINISH, JobStatus.SUCCEEDED, stop_reason=JobEnd.COMPLETED)
    if reason is StopRequest.CANCEL:
        return JobRecord(
            JobAction.FINISH, JobStatus.CANCELLED, "cancelled by request", JobEnd.CANCELLED
        )
    if reason is StopRequest.TIME_BUDGET:
        if completed_trials is None:
            # Judged again by whoever resumes it: past its deadline, it stops at once.
            return JobRecord(JobAction.REQUEUE, error="the completed trials could not be counted")
        if completed_trials > 0:
            return JobRecord(JobAction.FINISH, JobStatus.SUCCEEDED, stop_reason=JobEnd.TIME_BUDGET)
        return JobRecord(JobAction.FINISH, JobStatus.FAILED, NO_TRIAL_IN_BUDGET, JobEnd.FAILED)
    if ended.outcome is Outcome.FAILED:
        return JobRecord(JobAction.FINISH, JobStatus.FAILED, ended.message, JobEnd.FAILED)
    if reason is StopRequest.SHUTDOWN or ended.outcome is Outcome.STOPPED:
        return JobRecord(JobAction.REQUEUE)  # graceful shutdown: it resumes on another worker
    if attempt >= max_attempts:
        return JobRecord(
            JobAction.FINISH,
            JobStatus.FAILED,
            f"the search process {death(ended)} on each of {attempt} attempts",
            JobEnd.FAILED,
        )
    return JobRecord(JobAction.REQUEUE, error=f"the search process {death(ended)}; retrying")


class TunerAction(enum.StrEnum):
    """What a heartbeat on a tuner's slot says to do with the tuner's process."""

    KEEP = "keep"
    STOP = "stop"  # at its next epoch boundary, handing the slot back OPEN
    KILL = "kill"  # its chief restarted or the job ended: nobody will answer its oracle calls


def tuner_action(beat: Heartbeat, *, shutting_down: bool) -> TunerAction:
    if not beat.held:
        return TunerAction.KILL
    if beat.cancel_requested or shutting_down:
        return TunerAction.STOP
    return TunerAction.KEEP


def tuner_goes_on(ended: ChildExit, *, stop_asked: bool) -> bool:
    """A tuner process that recycled itself is replaced on the same slot, unless it had been
    asked to stop."""
    return ended.outcome is Outcome.RECYCLE and not stop_asked


def takes_own_slot(*, has_tuner: bool, reason: StopRequest | None, chief_searched: bool) -> bool:
    """Once the chief's own tuner (tuner0) has no more trials, and the search is not stopping,
    its worker runs a tuner for a slot of that job left open by a dead one, as any free worker
    would."""
    return not has_tuner and reason is None and chief_searched


@dataclass(frozen=True)
class SlotRecord:
    status: SlotStatus
    error: str | None = None


def slot_record(
    ended: ChildExit, *, stopping: bool, attempt: int, max_attempts: int
) -> SlotRecord | None:
    """How a tuner's end hands its slot back (None: the lease on it is lost, write nothing):
    DONE when it ran out of trials, OPEN for another worker to rerun its interrupted trial,
    FAILED after dying on max_attempts attempts."""
    if ended.outcome is Outcome.SUCCEEDED:
        return SlotRecord(SlotStatus.DONE)
    if ended.outcome is Outcome.LEASE_LOST:
        return None
    if stopping or ended.outcome is Outcome.STOPPED:
        return SlotRecord(SlotStatus.OPEN)
    error = ended.message or f"the tuner process {death(ended)}"
    return SlotRecord(SlotStatus.FAILED if attempt >= max_attempts else SlotStatus.OPEN, error)
