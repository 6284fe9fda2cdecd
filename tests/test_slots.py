"""The slots of a parallel job: claimed and leased like jobs, fenced on their chief."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from app.store.claims import Claim, SlotClaim
from app.store.models import JobSlot, JobStatus, SlotStatus, Trial, TrialStatus, utcnow
from app.store.queue import claim_job, finish_job, requeue_job
from app.store.slot_queue import (
    claim_slot,
    close_slots,
    heartbeat_slot,
    holds,
    open_slots,
    release_slot,
    work_waiting,
)
from app.store.unit_of_work import write_session
from tests.factories import insert_jobs


def _chief(engine: Engine, tuners: int = 3) -> Claim:
    insert_jobs(engine, 1)
    with write_session(engine) as session:
        claim = claim_job(session=session, worker_id="chief-worker", lease_s=30)
        assert claim is not None
        assert open_slots(session=session, claim=claim, tuners=tuners, address="h:1234")
    return claim


def _take(engine: Engine, worker: str, **kw: object) -> SlotClaim | None:
    with write_session(engine) as session:
        return claim_slot(session=session, worker_id=worker, lease_s=30, **kw)  # type: ignore[arg-type]


def test_each_slot_goes_to_one_worker_with_the_chief_address(engine: Engine) -> None:
    chief = _chief(engine, tuners=3)
    first, second = _take(engine, "w1"), _take(engine, "w2")
    assert first is not None
    assert second is not None
    # tuner0 is the chief's own: the others get tuner1 and tuner2.
    assert (first.slot, second.slot) == (1, 2)
    assert (first.tuner_id, first.chief_address, first.chief_attempt) == (
        "tuner1",
        "h:1234",
        chief.attempt,
    )
    assert _take(engine, "w3") is None
    with write_session(engine) as session:
        assert heartbeat_slot(session=session, claim=first, lease_s=30).held
        assert holds(session=session, claim=first)


def test_a_dead_workers_slot_is_taken_over_under_the_same_tuner_id(engine: Engine) -> None:
    _chief(engine, tuners=2)
    dead = _take(engine, "dead")
    assert dead is not None
    # Its lease expires; the job's (its chief's) has not.
    with write_session(engine) as session:
        session.execute(
            JobSlot.__table__.update().values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    heir = _take(engine, "heir")
    assert heir is not None
    assert (heir.slot, heir.attempt) == (dead.slot, dead.attempt + 1)
    with write_session(engine) as session:
        # The stale worker can neither renew nor write, nor hand the slot back.
        assert not heartbeat_slot(session=session, claim=dead, lease_s=30).held
        assert not holds(session=session, claim=dead)
        assert not release_slot(session=session, claim=dead, status=SlotStatus.DONE)
        assert release_slot(session=session, claim=heir, status=SlotStatus.DONE)


def test_slots_of_a_chief_that_is_gone_are_dead(engine: Engine) -> None:
    chief = _chief(engine, tuners=3)
    tuner = _take(engine, "w1")
    assert tuner is not None
    with write_session(engine) as session:
        requeue_job(session=session, claim=chief, reason="worker shutting down")
    with write_session(engine) as session:
        # Its tuner must stop at once: nobody will answer its calls.
        assert not heartbeat_slot(session=session, claim=tuner, lease_s=30).held
        assert not holds(session=session, claim=tuner)
        assert claim_slot(session=session, worker_id="w2", lease_s=30) is None
    # The job's next chief opens fresh slots; the old tuner's claim stays dead.
    restarted = _chief_again(engine)
    assert restarted.attempt == chief.attempt + 1
    fresh = _take(engine, "w2")
    assert fresh is not None
    assert fresh.chief_attempt == restarted.attempt
    with write_session(engine) as session:
        assert not holds(session=session, claim=tuner)


def _chief_again(engine: Engine) -> Claim:
    with write_session(engine) as session:
        claim = claim_job(session=session, worker_id="chief-2", lease_s=30)
        assert claim is not None
        assert open_slots(session=session, claim=claim, tuners=3, address="h:999")
    return claim


def test_the_chief_closes_idle_slots_and_a_finished_job_runs_no_trial(engine: Engine) -> None:
    chief = _chief(engine, tuners=4)
    busy = _take(engine, "w1")
    assert busy is not None
    with write_session(engine) as session:
        session.add(
            Trial(job_id=chief.job_id, trial_id="0", status=TrialStatus.RUNNING, hyperparameters={})
        )
        close_slots(session=session, claim=chief, slots=[1, 2, 3])
    with write_session(engine) as session:
        statuses = dict(session.execute(select(JobSlot.slot, JobSlot.status)).all())
        # Only unattended slots close; the live tuner hears STOPPED from the oracle itself.
        assert statuses == {
            busy.slot: SlotStatus.RUNNING,
            **dict.fromkeys({1, 2, 3} - {busy.slot}, SlotStatus.DONE),
        }
        assert finish_job(session=session, claim=chief, status=JobStatus.CANCELLED)
    with write_session(engine) as session:
        trial = session.scalars(select(Trial)).one()
        assert trial.status == TrialStatus.STOPPED
        assert not heartbeat_slot(session=session, claim=busy, lease_s=30).held


def _tuner1_mid_trial(engine: Engine, tmp_path) -> tuple[Any, SlotClaim, Any]:
    """A real KerasTuner oracle whose trial is running on slot 1 (taken by worker w1),
    recorded as RUNNING by that tuner."""
    import keras_tuner as kt

    from app.store.search_gateway import SearchDatabase
    from tuner_jobs.search.recorder import TrialRecorder

    hp = kt.HyperParameters()
    hp.Int("units", 8, 64)
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_loss", "min"), max_trials=3, hyperparameters=hp, seed=1
    )
    oracle._set_project_dir(str(tmp_path), "p")  # noqa: SLF001
    tuner = _take(engine, "w1")
    assert tuner is not None
    assert tuner.tuner_id == "tuner1"
    trial = oracle.create_trial(tuner.tuner_id)
    TrialRecorder(SearchDatabase(engine, tuner)).trial_started(
        trial.trial_id, dict(trial.hyperparameters.values)
    )
    return oracle, tuner, trial


def test_a_slot_dead_on_every_attempt_fails_its_trial_and_the_search_goes_on(
    engine: Engine, tmp_path
) -> None:
    """The chief's side (tuner_jobs.search.chief._tend_slots) against a real KerasTuner oracle:
    a slot FAILED after max_attempts holds a trial nobody will finish; the chief ends it
    FAILED, in the oracle and in the database, and hands out the next trial."""
    from app.store.search_gateway import SearchDatabase
    from tuner_jobs.search.chief import _tend_slots
    from tuner_jobs.search.recorder import TrialRecorder

    chief = _chief(engine, tuners=2)
    oracle, tuner, trial = _tuner1_mid_trial(engine, tmp_path)
    with write_session(engine) as session:
        assert release_slot(
            session=session, claim=tuner, status=SlotStatus.FAILED, error="killed by OOM"
        )

    database = SearchDatabase(engine, chief)
    _tend_slots(database, oracle, TrialRecorder(database), stopping=False)

    assert oracle.trials[trial.trial_id].status == "FAILED"
    assert tuner.tuner_id not in oracle.ongoing_trials
    with write_session(engine) as session:
        row = session.scalars(select(Trial)).one()
        assert (row.status, row.message) == (TrialStatus.FAILED, "killed by OOM")
    following = oracle.create_trial("tuner0")
    assert following.status == "RUNNING"
    assert following.trial_id != trial.trial_id


def test_a_failing_oracle_call_from_a_tuner_gives_the_lock_back(tmp_path) -> None:
    """KerasTuner's @synchronized keeps the oracle's lock when the method raises; through
    the chief's servicer the lock comes back, so tuner0 and the others can go on."""
    import keras_tuner as kt

    from tuner_jobs.search.chief import _LockSafeOracle
    from tuner_jobs.search.keras_tuner_compat import LOCKS

    def failed_trial(oracle: kt.Oracle, tuner_id: str) -> kt.engine.trial.Trial:
        trial = oracle.create_trial(tuner_id)
        trial.status = "FAILED"
        return trial

    for served in (False, True):
        hp = kt.HyperParameters()
        hp.Int("units", 8, 64)
        oracle = kt.oracles.RandomSearchOracle(
            objective=kt.Objective("val_loss", "min"),
            max_trials=5,
            hyperparameters=hp,
            max_consecutive_failed_trials=1,
        )
        oracle._set_project_dir(str(tmp_path / str(served)), "p")  # noqa: SLF001
        caller = _LockSafeOracle(oracle) if served else oracle
        with pytest.raises(RuntimeError, match="consecutive failures"):
            caller.end_trial(failed_trial(oracle, "tuner1"))
        lock = LOCKS[oracle]
        assert lock.acquire(timeout=0.2) is served  # KerasTuner alone leaves it held
        if served:
            lock.release()


def test_work_waiting_sees_exactly_what_a_claim_would_take(engine: Engine) -> None:
    """Idle workers read this between claims: it must say yes for a queued job and for an
    open slot, and no once both are taken."""

    def waiting() -> bool:
        with write_session(engine) as session:
            return work_waiting(session=session)

    assert not waiting()
    insert_jobs(engine, 1)
    assert waiting()
    with write_session(engine) as session:
        chief = claim_job(session=session, worker_id="chief-worker", lease_s=30)
        assert chief is not None
    assert not waiting()
    with write_session(engine) as session:
        assert open_slots(session=session, claim=chief, tuners=2, address="h:1")
    assert waiting()
    assert _take(engine, "w1") is not None
    assert not waiting()


def test_a_trial_ended_in_the_oracle_but_not_written_down_is_recorded_by_the_chief(
    engine: Engine, tmp_path
) -> None:
    """A tuner killed between end_trial (the oracle scored the trial) and its own write
    leaves the row RUNNING; the chief writes what the oracle knows before it finishes."""
    from app.store.search_gateway import SearchDatabase
    from tuner_jobs.search.chief import _record_unreported
    from tuner_jobs.search.recorder import TrialRecorder

    chief = _chief(engine, tuners=2)
    oracle, tuner, trial = _tuner1_mid_trial(engine, tmp_path)
    oracle.update_trial(trial.trial_id, {"val_loss": 0.25}, step=3)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)  # ... and the tuner dies here

    _record_unreported(oracle, TrialRecorder(SearchDatabase(engine, chief)))

    with write_session(engine) as session:
        row = session.scalars(select(Trial)).one()
        assert (row.status, row.score, row.best_epoch) == (TrialStatus.COMPLETED, 0.25, 3)


def _parallel_trials(engine: Engine, job_id: str, value: int | str) -> None:
    from app.store.models import Job

    with write_session(engine) as session:
        session.get_one(Job, job_id).spec = {"parallel_trials": value}


def test_an_auto_jobs_slots_are_lent_only_while_no_job_waits(engine: Engine) -> None:
    """parallel_trials "auto": an idle worker takes a slot only while no job waits; a tuner
    on one is told to hand it back once one does; the chief's own worker is never held
    back (it finishes its own job's trial) nor told to hand back."""
    from app.store.slot_queue import yields_to_waiting_job

    chief = _chief(engine, tuners=3)  # insert_jobs stores spec {}: "auto", as load_spec reads it
    lent = _take(engine, "w1")
    assert lent is not None
    with write_session(engine) as session:
        assert not yields_to_waiting_job(session=session, claim=lent)
    [waiting] = insert_jobs(engine, 1)
    with write_session(engine) as session:
        assert yields_to_waiting_job(session=session, claim=lent)
        assert claim_slot(session=session, worker_id="w2", lease_s=30) is None
        assert work_waiting(session=session)  # the queued job, not the slot
        own = claim_slot(
            session=session, worker_id=chief.worker_id, lease_s=30, job_id=chief.job_id
        )
        assert own is not None
        assert not yields_to_waiting_job(session=session, claim=own)
        taken = claim_job(session=session, worker_id="w2", lease_s=30)
        assert taken is not None
        assert taken.job_id == waiting
    with write_session(engine) as session:
        assert not yields_to_waiting_job(session=session, claim=lent)
        assert not work_waiting(session=session)  # slot 2 is the last, and own took it


def test_a_numbered_jobs_slots_come_before_queued_jobs_and_auto_slots(engine: Engine) -> None:
    """A number is a share the job was promised: its slots are taken before any queued job
    (today's meaning, kept), and before an "auto" job's lent slots."""
    from app.store.slot_queue import yields_to_waiting_job

    auto = _chief(engine, tuners=2)
    numbered = _chief(engine, tuners=2)
    _parallel_trials(engine, numbered.job_id, 2)
    first = _take(engine, "w1")
    assert first is not None
    assert first.job_id == numbered.job_id  # the younger job, but promised
    with write_session(engine) as session:
        assert not yields_to_waiting_job(session=session, claim=first)
        assert release_slot(session=session, claim=first, status=SlotStatus.OPEN)
    insert_jobs(engine, 1)
    again = _take(engine, "w1")
    assert again is not None
    assert again.job_id == numbered.job_id  # a job waits, the promised slot still goes first
    with write_session(engine) as session:
        assert not yields_to_waiting_job(session=session, claim=again)
    assert _take(engine, "w2") is None  # auto's slot: lent only while no job waits
    assert auto.job_id != numbered.job_id
