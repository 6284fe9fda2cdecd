"""The supervisor's watch when a job's time budget is spent before any trial completed
(tuner_jobs.worker.processes.watch): a user's budget ends the search at once, killed; a
budget the service chose ("auto", ResolvedSpec.budget_waits_for_a_trial) lets the search
reach its first completed trial, and only then asks it to stop. The search process is a
stand-in here: the subject is the watch's decision at each heartbeat, not a search."""

from __future__ import annotations

from app.store.queue import Heartbeat
from tuner_jobs.worker.outcomes import StopRequest
from tuner_jobs.worker.processes import watch
from tuner_jobs.worker.shutdown import Shutdown


class Process:
    """What watch() asks of a search process; it reports once asked to stop or killed."""

    def __init__(self) -> None:
        self.killed = False
        self.stop_asked_at: float | None = None
        self.stop_reasons: list[StopRequest | None] = []
        self.beats = 0

    def finished(self, timeout: float, wakeup: list[int]) -> bool:
        return self.killed or self.stop_asked_at is not None

    def kill(self) -> None:
        self.killed = True

    def ask_stop(self, reason: StopRequest | None = None) -> None:
        self.stop_asked_at = 0.0
        self.stop_reasons.append(reason)


def _watch(process: Process, completed: list[int], waits: bool) -> StopRequest | None:
    def beat() -> Heartbeat:
        process.beats += 1
        return Heartbeat(held=True)

    return watch(
        process,  # type: ignore[arg-type]
        beat=beat,
        shutdown=Shutdown(),
        heartbeat_s=0.0,
        deadline=0.0,  # spent long ago (time.monotonic())
        log={},
        completed_trials=lambda: completed[min(process.beats, len(completed)) - 1],
        budget_waits_for_a_trial=waits,
    )


def test_a_users_budget_spent_before_a_trial_kills_the_search_at_once() -> None:
    process = Process()
    assert _watch(process, completed=[0, 0, 0, 1], waits=False) is StopRequest.TIME_BUDGET
    assert process.killed
    assert process.beats == 1
    assert process.stop_reasons == []


def test_an_auto_budget_waits_for_the_first_completed_trial_then_stops_it() -> None:
    process = Process()
    assert _watch(process, completed=[0, 0, 0, 1], waits=True) is StopRequest.TIME_BUDGET
    assert not process.killed
    assert process.beats == 4  # three beats without a completed trial, then the fourth
    assert process.stop_reasons == [StopRequest.TIME_BUDGET]
