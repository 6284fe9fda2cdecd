"""One search spread over several workers: KerasTuner's chief/worker mode, through the queue."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, postgresql_only
from tests.factories import customers_frame, submit, trials_of, upload_ok, wait_for_job

pytestmark = pytest.mark.slow

SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 64},
    "batch_size": {"type": "fixed", "value": 16},
}


def _parallel_job(
    api: httpx.Client, *, trials: int, epochs: int, parallel_trials: int | str = 2
) -> dict[str, Any]:
    # Epochs long enough (a few tenths of a second) for a kill to land mid-trial after
    # the test has seen the trial's progress: 400 rows took a few hundredths.
    dataset = upload_ok(api, customers_frame(rows=2000), "churned")
    return submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": trials},
        training={"epochs": epochs},
        callbacks={"early_stopping": False},
        pruning=None,  # every trial runs all its epochs: the test counts them
        search_space=SPACE,
        parallel_trials=parallel_trials,
    )


def _pid(worker_id: str) -> int:
    return int(worker_id.split(":")[1])


# "auto" (the default): the slot the second worker was lent is taken over the same way. The
# queue SQL of both (the chief's worker claims its own slot, waiting jobs or not) is checked
# on both backends in tests/test_slots.py; here a number on PostgreSQL and "auto" on SQLite
# (each pairing costs the suite half a minute).
@pytest.mark.parametrize(
    ("database_url", "parallel_trials"),
    [("postgresql", 2), ("sqlite", "auto")],
    indirect=["database_url"],
)
def test_two_workers_share_a_search_and_a_killed_one_loses_no_trial(
    api: httpx.Client, start_worker, settings, parallel_trials: int | str
) -> None:
    """Trials run on two workers at once; SIGKILL the one that is not the chief's in the
    middle of a trial: the chief's worker takes its slot over and reruns that trial."""
    # A short lease, so a dead worker's slot is taken over within seconds.
    short_lease = make_settings(settings.database_url, settings.data_dir, lease_s=3.0)
    # Trials of 20 epochs (about 3 s on an idle machine): at 6, the chief's tuner ran four of
    # the five trials while the second worker's search process was still importing TensorFlow.
    job = _parallel_job(api, trials=5, epochs=20, parallel_trials=parallel_trials)
    workers = [start_worker(settings_override=short_lease) for _ in range(2)]
    by_pid = {worker.proc.pid: worker for worker in workers}

    # Wait until both workers are mid-trial, then kill the one that is not the chief's.
    deadline = time.monotonic() + 240
    victim_trial = None
    while victim_trial is None:
        assert time.monotonic() < deadline, "the two workers never ran trials side by side"
        running = [t for t in trials_of(api, job["id"]) if t["status"] == "RUNNING"]
        if len({t["worker"] for t in running}) == 2:
            lease_pids = {_pid(t["worker"]) for t in running}
            chief_pid = _chief_pid(settings.database_url, job["id"])
            for trial in running:
                # Mid-trial: an epoch done, and at least two to go, so the kill lands
                # before the tuner can tell the oracle that the trial ended.
                if _pid(trial["worker"]) != chief_pid and 1 <= trial["epochs_run"] <= 4:
                    victim_trial = trial
            assert chief_pid in lease_pids
        time.sleep(0.1)
    victim = by_pid[_pid(victim_trial["worker"])]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()

    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    trials = trials_of(api, job["id"])
    assert sorted(t["trial_id"] for t in trials) == [str(i) for i in range(5)]
    assert all(t["status"] == "COMPLETED" for t in trials), trials
    rerun = next(t for t in trials if t["trial_id"] == victim_trial["trial_id"])
    # The interrupted trial ran again, whole, under the surviving worker.
    assert _pid(rerun["worker"]) != victim.proc.pid
    assert rerun["hyperparameters"] == victim_trial["hyperparameters"]
    assert rerun["epochs_run"] == 20
    # The chief kept the best model of trials run by both workers.
    assert done["best"] is not None
    best_model = api.get(f"/api/v1/jobs/{job['id']}/model")
    assert best_model.status_code == 200
    assert len(best_model.content) > 1000


def _chief_pid(database_url: str, job_id: str) -> int:
    from sqlalchemy import create_engine, select

    from app.store.models import Job

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            owner = conn.execute(select(Job.lease_owner).where(Job.id == job_id)).scalar_one()
    finally:
        engine.dispose()
    return _pid(owner)


# The chief's resume is the job queue's own (covered on both backends by
# tests/test_resilience.py); here on the multi-machine backend.
@postgresql_only
def test_a_killed_chief_resumes_like_any_job(api: httpx.Client, start_worker, settings) -> None:
    short_lease = make_settings(settings.database_url, settings.data_dir, lease_s=3.0)
    job = _parallel_job(api, trials=4, epochs=6)
    workers = [start_worker(settings_override=short_lease) for _ in range(2)]
    by_pid = {worker.proc.pid: worker for worker in workers}
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, "no trial finished"
        trials = trials_of(api, job["id"])
        if any(t["status"] == "COMPLETED" for t in trials) and any(
            t["status"] == "RUNNING" and t["epochs_run"] >= 1 for t in trials
        ):
            break
        time.sleep(0.1)
    finished = {t["trial_id"]: t for t in trials if t["status"] == "COMPLETED"}
    chief = by_pid[_chief_pid(settings.database_url, job["id"])]
    chief.proc.send_signal(signal.SIGKILL)
    chief.proc.wait()

    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    assert done["attempt"] == 2  # the surviving worker became the new chief
    trials = trials_of(api, job["id"])
    assert sorted(t["trial_id"] for t in trials) == [str(i) for i in range(4)]
    assert all(t["status"] == "COMPLETED" for t in trials), trials
    for trial in trials:
        if trial["trial_id"] in finished:  # finished before the kill: kept as they were
            before = finished[trial["trial_id"]]
            assert (trial["score"], trial["worker"]) == (before["score"], before["worker"])
