"""The supervisor's decisions (tuner_jobs.worker.outcomes), each rule from a table of cases:
no process, no database, no TensorFlow. The slow tests in test_resilience.py and
test_parallel_trials.py check that the worker acts on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.store.models import JobStatus
from app.store.queue import Heartbeat
from app.store.statuses import JobEnd
from tests.outcome_cases import CANCELLED, HELD, LOST, NOW, died, reported
from tuner_jobs.search.child import Outcome
from tuner_jobs.worker.outcomes import (
    NO_TRIAL_IN_BUDGET,
    ChildExit,
    JobAction,
    JobRecord,
    StopRequest,
    job_record,
    lease_while_away,
    search_goes_on,
    stop_request,
)


@pytest.mark.parametrize(
    ("beat", "shutting_down", "deadline", "expected"),
    [
        pytest.param(HELD, False, None, None, id="nothing-to-stop-for"),
        pytest.param(HELD, False, NOW + 1, None, id="deadline-ahead"),
        pytest.param(HELD, False, NOW, None, id="deadline-reached-but-not-passed"),
        pytest.param(HELD, False, NOW - 1, StopRequest.TIME_BUDGET, id="deadline-passed"),
        pytest.param(HELD, True, None, StopRequest.SHUTDOWN, id="shutdown"),
        pytest.param(HELD, True, NOW - 1, StopRequest.TIME_BUDGET, id="timeout-before-shutdown"),
        pytest.param(CANCELLED, False, None, StopRequest.CANCEL, id="cancel"),
        pytest.param(CANCELLED, True, NOW - 1, StopRequest.CANCEL, id="cancel-before-timeout"),
        pytest.param(LOST, True, NOW - 1, StopRequest.LEASE_LOST, id="lease-lost-before-all"),
    ],
)
def test_why_a_search_is_stopped(
    beat: Heartbeat, shutting_down: bool, deadline: float | None, expected: StopRequest | None
) -> None:
    assert stop_request(beat, shutting_down=shutting_down, deadline=deadline, now=NOW) == expected


UTC_NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ends_at", "deadline", "expected"),
    [
        # The heartbeat reads the budget from the job's row: what PATCH set wins over the
        # deadline planned at the claim.
        pytest.param(None, NOW - 1, None, id="budget-removed-while-running"),
        pytest.param(UTC_NOW - timedelta(seconds=1), None, StopRequest.TIME_BUDGET, id="shortened"),
        pytest.param(UTC_NOW + timedelta(seconds=1), NOW - 1, None, id="extended"),
        pytest.param(UTC_NOW, None, StopRequest.TIME_BUDGET, id="reached"),
    ],
)
def test_the_budget_the_heartbeat_read_is_the_one_obeyed(
    ends_at: datetime | None, deadline: float | None, expected: StopRequest | None
) -> None:
    beat = Heartbeat(held=True, budget_read=True, search_ends_at=ends_at)
    reason = stop_request(beat, shutting_down=False, deadline=deadline, now=NOW, utc_now=UTC_NOW)
    assert reason == expected


@pytest.mark.parametrize(
    ("since_renewed", "held"),
    [
        pytest.param(0.0, True, id="just-renewed"),
        pytest.param(29.9, True, id="within-the-lease"),
        pytest.param(30.0, False, id="expired-exactly"),
        pytest.param(45.0, False, id="past-the-lease"),
    ],
)
def test_while_the_database_is_away_the_lease_is_ours_until_it_expires(
    since_renewed: float, held: bool
) -> None:
    beat = lease_while_away(renewed_at=NOW - since_renewed, now=NOW, lease_s=30.0)
    assert beat == Heartbeat(held=held, cancel_requested=False)


RETRYING = "the search process was killed by signal 9 (SIGKILL), possibly out of memory; retrying"
SUCCEEDED = JobRecord(JobAction.FINISH, JobStatus.SUCCEEDED, stop_reason=JobEnd.COMPLETED)
CANCELLED_BY_REQUEST = JobRecord(
    JobAction.FINISH, JobStatus.CANCELLED, "cancelled by request", JobEnd.CANCELLED
)
IN_BUDGET = JobRecord(JobAction.FINISH, JobStatus.SUCCEEDED, stop_reason=JobEnd.TIME_BUDGET)
NOTHING_IN_BUDGET = JobRecord(JobAction.FINISH, JobStatus.FAILED, NO_TRIAL_IN_BUDGET, JobEnd.FAILED)


@pytest.mark.parametrize(
    ("ended", "reason", "attempt", "expected"),
    [
        # A lost lease: the job is another worker's, whatever the child said.
        pytest.param(
            reported(Outcome.SUCCEEDED),
            StopRequest.LEASE_LOST,
            1,
            JobRecord(JobAction.LEAVE),
            id="lease-lost-while-watching",
        ),
        pytest.param(
            reported(Outcome.LEASE_LOST, "fenced out"),
            None,
            1,
            JobRecord(JobAction.LEAVE),
            id="lease-lost-seen-by-the-child",
        ),
        # The child's success stands even when a stop came too late to matter.
        pytest.param(
            reported(Outcome.SUCCEEDED),
            None,
            1,
            SUCCEEDED,
            id="succeeded",
        ),
        pytest.param(
            reported(Outcome.SUCCEEDED),
            StopRequest.CANCEL,
            1,
            SUCCEEDED,
            id="succeeded-despite-cancel",
        ),
        pytest.param(
            reported(Outcome.SUCCEEDED),
            StopRequest.TIME_BUDGET,
            1,
            SUCCEEDED,
            id="succeeded-despite-timeout",
        ),
        # A stop the supervisor asked for names the job's end.
        pytest.param(
            reported(Outcome.STOPPED),
            StopRequest.CANCEL,
            1,
            CANCELLED_BY_REQUEST,
            id="cancelled",
        ),
        pytest.param(
            died(),
            StopRequest.CANCEL,
            3,
            CANCELLED_BY_REQUEST,
            id="cancelled-though-killed-past-the-grace",
        ),
        # The child's own failure: final, never retried, with its message.
        pytest.param(
            reported(Outcome.FAILED, "ValueError: bad", exitcode=None),
            None,
            1,
            JobRecord(JobAction.FINISH, JobStatus.FAILED, "ValueError: bad", JobEnd.FAILED),
            id="failed",
        ),
        pytest.param(
            reported(Outcome.FAILED, "ValueError: bad"),
            StopRequest.SHUTDOWN,
            1,
            JobRecord(JobAction.FINISH, JobStatus.FAILED, "ValueError: bad", JobEnd.FAILED),
            id="failed-during-shutdown",
        ),
        # A graceful stop hands the job back, whatever the attempt: it resumes elsewhere.
        pytest.param(
            reported(Outcome.STOPPED),
            StopRequest.SHUTDOWN,
            2,
            JobRecord(JobAction.REQUEUE),
            id="shutdown-requeues",
        ),
        pytest.param(
            died(),
            StopRequest.SHUTDOWN,
            2,
            JobRecord(JobAction.REQUEUE),
            id="killed-in-shutdown-is-not-a-death",
        ),
        pytest.param(
            reported(Outcome.STOPPED),
            None,
            2,
            JobRecord(JobAction.REQUEUE),
            id="stopped-on-its-own-requeues",
        ),
        pytest.param(
            reported(Outcome.RECYCLE, "recycle at 25 trials"),
            StopRequest.SHUTDOWN,
            1,
            JobRecord(JobAction.REQUEUE),
            id="recycled-while-shutting-down",
        ),
        pytest.param(
            reported(Outcome.RECYCLE, "recycle at 25 trials"),
            StopRequest.CANCEL,
            1,
            CANCELLED_BY_REQUEST,
            id="recycled-while-cancelling",
        ),
        # A process that died without a word: retried until max_attempts (2 here).
        pytest.param(
            died(), None, 1, JobRecord(JobAction.REQUEUE, error=RETRYING), id="died-retried"
        ),
        pytest.param(
            died(),
            None,
            2,
            JobRecord(
                JobAction.FINISH,
                JobStatus.FAILED,
                "the search process was killed by signal 9 (SIGKILL), possibly out of memory "
                "on each of 2 attempts",
                JobEnd.FAILED,
            ),
            id="died-on-the-last-attempt",
        ),
        pytest.param(
            died(exitcode=1),
            None,
            3,
            JobRecord(
                JobAction.FINISH,
                JobStatus.FAILED,
                "the search process died (exit code 1) on each of 3 attempts",
                JobEnd.FAILED,
            ),
            id="died-past-the-last-attempt",
        ),
        pytest.param(
            reported(Outcome.RECYCLE, "recycle at 25 trials"),
            None,
            1,
            JobRecord(JobAction.REQUEUE, error="the search process died (exit code 0); retrying"),
            id="a-chief-that-recycles-counts-as-a-death",
        ),
    ],
)
def test_what_a_search_process_end_means_for_the_job(
    ended: ChildExit, reason: StopRequest | None, attempt: int, expected: JobRecord
) -> None:
    assert job_record(ended, reason, attempt=attempt, max_attempts=2) == expected


@pytest.mark.parametrize(
    ("ended", "completed", "expected"),
    [
        # A time budget is a normal ending when at least one trial COMPLETED (the trial it
        # interrupted is STOPPED and does not count).
        pytest.param(reported(Outcome.STOPPED), 3, IN_BUDGET, id="budget-with-trials"),
        pytest.param(reported(Outcome.STOPPED), 1, IN_BUDGET, id="budget-with-one-trial"),
        pytest.param(died(), 2, IN_BUDGET, id="budget-though-killed-past-the-grace"),
        pytest.param(
            reported(Outcome.FAILED, "ValueError: bad"), 2, IN_BUDGET, id="budget-over-failure"
        ),
        pytest.param(reported(Outcome.STOPPED), 0, NOTHING_IN_BUDGET, id="budget-too-small"),
        pytest.param(
            reported(Outcome.FAILED, "ValueError: bad"),
            0,
            NOTHING_IN_BUDGET,
            id="budget-too-small-names-the-budget",
        ),
        # The child's own end wins when it finished before it heard the stop.
        pytest.param(reported(Outcome.SUCCEEDED), 0, SUCCEEDED, id="completed-in-time"),
        # The count could not be read: whoever resumes it judges it, at once past its deadline.
        pytest.param(
            reported(Outcome.STOPPED),
            None,
            JobRecord(JobAction.REQUEUE, error="the completed trials could not be counted"),
            id="budget-count-unknown",
        ),
    ],
)
def test_a_time_budget_is_a_normal_ending(
    ended: ChildExit, completed: int | None, expected: JobRecord
) -> None:
    record = job_record(
        ended, StopRequest.TIME_BUDGET, attempt=1, max_attempts=2, completed_trials=completed
    )
    assert record == expected


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (JobStatus.SUCCEEDED, JobEnd.COMPLETED),
        (JobStatus.CANCELLED, JobEnd.CANCELLED),
        (JobStatus.FAILED, JobEnd.FAILED),
    ],
)
def test_every_finish_the_rules_write_says_why(status: JobStatus, why: JobEnd) -> None:
    """No finished job without a stop_reason: each rule that finishes a job names one."""
    cases = [
        job_record(reported(Outcome.SUCCEEDED), None, attempt=1, max_attempts=2),
        job_record(reported(Outcome.STOPPED), StopRequest.CANCEL, attempt=1, max_attempts=2),
        job_record(reported(Outcome.FAILED, "x"), None, attempt=1, max_attempts=2),
        job_record(died(), None, attempt=2, max_attempts=2),
    ]
    finished = [r for r in cases if r.status is status]
    assert finished
    assert all(r.stop_reason is why for r in finished)


@pytest.mark.parametrize(
    ("ended", "reason", "goes_on"),
    [
        pytest.param(reported(Outcome.RECYCLE, "25 trials"), None, True, id="recycled"),
        pytest.param(
            reported(Outcome.RECYCLE), StopRequest.SHUTDOWN, False, id="recycled-but-stopping"
        ),
        pytest.param(reported(Outcome.RECYCLE), StopRequest.CANCEL, False, id="recycled-cancel"),
        pytest.param(reported(Outcome.SUCCEEDED), None, False, id="succeeded"),
        pytest.param(reported(Outcome.STOPPED), None, False, id="stopped"),
        pytest.param(died(), None, False, id="died"),
    ],
)
def test_a_recycled_search_process_is_replaced_unless_stopping(
    ended: ChildExit, reason: StopRequest | None, goes_on: bool
) -> None:
    assert search_goes_on(ended, reason) is goes_on
