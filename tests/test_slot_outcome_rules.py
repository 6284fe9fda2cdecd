"""The rules for the slots of parallel jobs, and what crosses the pipe
(tuner_jobs.worker.outcomes), each from a table of cases: no process, no database."""

from __future__ import annotations

import pickle

import pytest

from app.store.claims import Claim, SlotClaim
from app.store.models import SlotStatus
from app.store.queue import Heartbeat
from tests.outcome_cases import CANCELLED, HELD, LOST, died, reported
from tuner_jobs.search.child import ChildJob, ChildReport, Outcome, Role
from tuner_jobs.worker.outcomes import (
    ChildExit,
    SlotRecord,
    StopRequest,
    TunerAction,
    slot_record,
    takes_own_slot,
    tuner_action,
    tuner_goes_on,
)


@pytest.mark.parametrize(
    ("beat", "shutting_down", "expected"),
    [
        pytest.param(HELD, False, TunerAction.KEEP, id="keep"),
        pytest.param(CANCELLED, False, TunerAction.STOP, id="cancel-stops"),
        pytest.param(HELD, True, TunerAction.STOP, id="shutdown-stops"),
        pytest.param(LOST, True, TunerAction.KILL, id="lost-slot-kills"),
        pytest.param(Heartbeat(held=False), False, TunerAction.KILL, id="lost-slot-alone"),
    ],
)
def test_what_a_slot_heartbeat_says_to_do_with_its_tuner(
    beat: Heartbeat, shutting_down: bool, expected: TunerAction
) -> None:
    assert tuner_action(beat, shutting_down=shutting_down) is expected


@pytest.mark.parametrize(
    ("ended", "stop_asked", "goes_on"),
    [
        pytest.param(reported(Outcome.RECYCLE), False, True, id="recycled"),
        pytest.param(reported(Outcome.RECYCLE), True, False, id="recycled-but-stopping"),
        pytest.param(reported(Outcome.SUCCEEDED), False, False, id="succeeded"),
        pytest.param(died(), False, False, id="died"),
    ],
)
def test_a_recycled_tuner_is_replaced_unless_stopping(
    ended: ChildExit, stop_asked: bool, goes_on: bool
) -> None:
    assert tuner_goes_on(ended, stop_asked=stop_asked) is goes_on


@pytest.mark.parametrize(
    ("has_tuner", "reason", "chief_searched", "takes"),
    [
        pytest.param(False, None, True, True, id="tuner0-done-and-free"),
        pytest.param(False, None, False, False, id="tuner0-still-searching"),
        pytest.param(True, None, True, False, id="already-running-a-tuner"),
        pytest.param(False, StopRequest.SHUTDOWN, True, False, id="stopping"),
    ],
)
def test_a_chiefs_worker_takes_a_slot_of_its_own_job_once_tuner0_is_done(
    has_tuner: bool, reason: StopRequest | None, chief_searched: bool, takes: bool
) -> None:
    assert (
        takes_own_slot(has_tuner=has_tuner, reason=reason, chief_searched=chief_searched) is takes
    )


TUNER_DIED = "the tuner process was killed by signal 9 (SIGKILL), possibly out of memory"


@pytest.mark.parametrize(
    ("ended", "stopping", "attempt", "expected"),
    [
        pytest.param(reported(Outcome.SUCCEEDED), False, 1, SlotRecord(SlotStatus.DONE), id="done"),
        pytest.param(
            reported(Outcome.SUCCEEDED),
            True,
            2,
            SlotRecord(SlotStatus.DONE),
            id="done-despite-stopping",
        ),
        pytest.param(reported(Outcome.LEASE_LOST), True, 1, None, id="lease-lost-writes-nothing"),
        pytest.param(
            reported(Outcome.STOPPED), False, 2, SlotRecord(SlotStatus.OPEN), id="stopped-reopens"
        ),
        pytest.param(died(), True, 2, SlotRecord(SlotStatus.OPEN), id="killed-when-stopping"),
        pytest.param(died(), False, 1, SlotRecord(SlotStatus.OPEN, TUNER_DIED), id="died-reopens"),
        pytest.param(
            died(),
            False,
            2,
            SlotRecord(SlotStatus.FAILED, TUNER_DIED),
            id="died-on-the-last-attempt",
        ),
        pytest.param(
            reported(Outcome.FAILED, "ValueError: bad"),
            False,
            1,
            SlotRecord(SlotStatus.OPEN, "ValueError: bad"),
            id="failed-reopens-with-its-message",
        ),
        pytest.param(
            reported(Outcome.FAILED, "ValueError: bad"),
            False,
            3,
            SlotRecord(SlotStatus.FAILED, "ValueError: bad"),
            id="failed-past-the-last-attempt",
        ),
    ],
)
def test_how_a_tuners_end_hands_its_slot_back(
    ended: ChildExit, stopping: bool, attempt: int, expected: SlotRecord | None
) -> None:
    assert slot_record(ended, stopping=stopping, attempt=attempt, max_attempts=2) == expected


@pytest.mark.parametrize(
    "claim",
    [
        Claim(job_id="j", attempt=2, worker_id="w"),
        SlotClaim(
            job_id="j", slot=1, attempt=1, worker_id="w", chief_attempt=3, chief_address="h:1"
        ),
    ],
    ids=["job", "slot"],
)
def test_what_travels_over_the_pipe_survives_pickling(claim: Claim | SlotClaim) -> None:
    job = ChildJob(settings={"lease_s": 30.0}, role=Role.TUNER, claim=claim)
    report = ChildReport(Outcome.RECYCLE, "recycle at 25 trials")
    assert pickle.loads(pickle.dumps(job)) == job
    assert pickle.loads(pickle.dumps(report)) == report
    assert type(pickle.loads(pickle.dumps(job)).claim) is type(claim)
