"""A worker or a search process killed mid-trial: the job resumes and loses nothing."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, sqlite_only
from tests.factories import (
    customers_frame,
    regression_frame,
    search_process,
    submit,
    upload_ok,
    wait_for_job,
    wait_mid_trial,
)

pytestmark = pytest.mark.slow

# Long enough to kill mid-trial, short enough for the suite: an epoch of 2,500 rows
# takes about 0.25 s here (600 rows took 60 ms, shorter than the tests' polling).
EPOCHS = 5
ROWS = 2500
SLOW_TRIALS = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 32},
    "batch_size": {"type": "fixed", "value": 8},
}


def _trials(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return api.get(f"/api/v1/jobs/{job_id}/trials", params={"limit": 1000}).json()["items"]


def _finished_trials(api: httpx.Client, job_id: str) -> dict[str, dict[str, Any]]:
    return {t["trial_id"]: t for t in _trials(api, job_id) if t["status"] == "COMPLETED"}


# A killed search process is the worker's own business; PostgreSQL's lease expiry and
# reclaim are what the supervisor variant checks there.
@pytest.mark.parametrize(
    ("database_url", "victim"),
    [("sqlite", "supervisor"), ("sqlite", "search"), ("postgresql", "supervisor")],
    indirect=["database_url"],
)
def test_killed_worker_job_resumes_with_its_finished_trials(
    api: httpx.Client, start_worker, settings, tmp_path: Path, victim: str
) -> None:
    dataset = upload_ok(api, customers_frame(rows=ROWS), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3},
        training={"epochs": EPOCHS},
        callbacks={"early_stopping": False},
        pruning=None,  # every trial runs all its epochs: the test counts them
        search_space=SLOW_TRIALS,
    )
    # A short lease, so the job of a dead worker is claimable again within seconds.
    short_lease = make_settings(settings.database_url, settings.data_dir, lease_s=3.0)
    first = start_worker(settings_override=short_lease)
    wait_mid_trial(api, job["id"], epochs=EPOCHS, completed=1)
    before = _finished_trials(api, job["id"])
    assert before

    if victim == "supervisor":
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        start_worker(settings_override=short_lease)
    else:
        # The supervisor survives its child and hands the job back for another attempt.
        os.kill(search_process(first.proc.pid), signal.SIGKILL)

    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    assert done["attempt"] == 2
    trials = api.get(f"/api/v1/jobs/{job['id']}/trials", params={"limit": 1000}).json()
    assert trials["total"] == 3 == done["progress"]["trials_completed"]
    assert sorted(t["trial_id"] for t in trials["items"]) == ["0", "1", "2"]
    after = _finished_trials(api, job["id"])
    for trial_id, trial in before.items():
        kept = after[trial_id]
        assert (kept["hyperparameters"], kept["score"], kept["started_at"]) == (
            trial["hyperparameters"],
            trial["score"],
            trial["started_at"],
        )
    # Every trial's curve is whole: the interrupted one reran from its first epoch.
    for trial_id in after:
        curve = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial_id}").json()["metrics"]
        assert [m["epoch"] for m in curve] == list(range(EPOCHS))


def test_sigterm_hands_the_job_back_and_it_resumes_elsewhere(
    api: httpx.Client, start_worker, settings
) -> None:
    dataset = upload_ok(api, customers_frame(rows=ROWS), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3},
        training={"epochs": EPOCHS},
        callbacks={"early_stopping": False},
        pruning=None,  # every trial runs all its epochs: the test counts them
        search_space=SLOW_TRIALS,
    )
    # A slow heartbeat: SIGTERM wakes the supervisor at once, so the search stops at its
    # next epoch, not after the trial (or the whole search) has run on to the next beat.
    slow_beat = make_settings(
        settings.database_url, settings.data_dir, heartbeat_s=30.0, lease_s=60.0
    )
    first = start_worker(settings_override=slow_beat)
    wait_mid_trial(api, job["id"], epochs=EPOCHS, completed=1)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0
    requeued = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert requeued["status"] == "queued"
    assert requeued["error"] is None
    assert requeued["attempt"] == 1
    stopped = [t for t in _trials(api, job["id"]) if t["status"] == "STOPPED"]
    assert len(stopped) == 1  # the trial in progress ended at an epoch boundary

    start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded"
    assert done["attempt"] == 2
    assert sorted(t["trial_id"] for t in _trials(api, job["id"])) == ["0", "1", "2"]
    assert api.get(f"/api/v1/jobs/{job['id']}/model").status_code == 200


@sqlite_only  # the worker's retry count; the backends record a failure alike (other tests)
def test_a_search_process_that_keeps_dying_fails_the_job(
    api: httpx.Client, start_worker, settings
) -> None:
    dataset = upload_ok(api, customers_frame(rows=600), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3},
        training={"epochs": EPOCHS},
        callbacks={"early_stopping": False},
        pruning=None,  # every trial runs all its epochs: the test counts them
        search_space=SLOW_TRIALS,
    )
    two_attempts = make_settings(settings.database_url, settings.data_dir, max_attempts=2)
    worker = start_worker(settings_override=two_attempts)
    killed = None
    for attempt in (1, 2):
        # As the kernel's out-of-memory killer would: SIGKILL, no goodbye.
        deadline = time.monotonic() + 120
        while api.get(f"/api/v1/jobs/{job['id']}").json()["attempt"] < attempt:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # The killed trial reads as RUNNING until the next process starts it again.
        running = wait_mid_trial(api, job["id"], epochs=EPOCHS, not_this=killed)
        killed = running["progress"]["current_trial"]
        os.kill(search_process(worker.proc.pid), signal.SIGKILL)
    done = wait_for_job(api, job["id"], timeout=120)
    assert done["status"] == "failed"
    # Nobody in the worker sent that SIGKILL: the kernel's OOM killer's way, said so.
    assert "killed by signal 9 (SIGKILL), possibly out of memory" in done["error"]
    assert "2 attempts" in done["error"]
    assert worker.proc.poll() is None  # the worker itself survives its children


@sqlite_only  # KerasTuner's failure count; failed trials are recorded alike on both
def test_diverging_trials_are_failed_and_too_many_fail_the_job(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    job = submit(
        api,
        dataset["id"],
        # The seed these trials diverge with at their first epoch (jobs draw one otherwise).
        tuner={"algorithm": "random_search", "max_trials": 6, "seed": 42},
        training={"epochs": 5},
        search_space={
            "num_layers": {"type": "fixed", "value": 2},
            "units": {"type": "fixed", "value": 64},
            "optimizer": {"type": "fixed", "value": "sgd"},
            "learning_rate": {"type": "fixed", "value": 10.0},
            "activation": {"type": "fixed", "value": "relu"},
        },
    )
    start_worker()
    done = wait_for_job(api, job["id"], timeout=180)
    assert done["status"] == "failed"
    assert "consecutive failures" in done["error"]
    trials = _trials(api, job["id"])
    assert len(trials) == 3
    for trial in trials:
        assert trial["status"] == "FAILED"
        assert "diverged" in trial["message"]
        assert trial["stopped_early"] is False


@pytest.mark.parametrize("parallel_trials", [1, "auto"])
@sqlite_only  # recycling is the worker's; both backends lease and record alike (other tests)
def test_search_process_is_recycled_and_the_search_carries_on(
    api: httpx.Client, start_worker, settings, tmp_path: Path, parallel_trials: int | str
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 4},
        training={"epochs": 2},
        search_space=SLOW_TRIALS,
        # "auto" on one worker: its chief recycles too, no other tuner taking part.
        parallel_trials=parallel_trials,
    )
    every_two = make_settings(settings.database_url, settings.data_dir, recycle_trials=2)
    start_worker(settings_override=every_two)
    done = wait_for_job(api, job["id"], timeout=300)
    log = (tmp_path / "worker-0.log").read_text()
    assert done["status"] == "succeeded", (done["error"], log[-3000:])
    assert done["attempt"] == 1
    trials = _trials(api, job["id"])
    assert sorted(t["trial_id"] for t in trials) == ["0", "1", "2", "3"]
    assert {t["status"] for t in trials} == {"COMPLETED"}
    # Two processes ran the search: trials 0-1, then 2-3. The second is not recycled at
    # trial 3, the plan's last: a fresh process would only have ended the search.
    assert log.count("search process recycled") == 1
    started = "search starting" if parallel_trials == 1 else "chief serving the oracle"
    assert log.count(started) == 2
    # A fresh process does not export again the best model the last one exported; the
    # last export is the refit of the best configuration (cross-validated: 240 rows).
    exported = re.findall(r"best model exported trial_id=(\w+)", log)
    searched = exported[:-1]
    assert len(searched) == len(set(searched)), exported


def test_four_workers_run_twenty_jobs_each_exactly_once(
    api: httpx.Client, start_worker, settings, tmp_path: Path
) -> None:
    """The claim race with real workers: four supervisors, each spawning a real search
    process per job, take twenty queued jobs; each job is claimed and run once.

    What the jobs do is not under test, so they end within a second: their dataset's
    file is removed after upload, the error a worker machine that does not share the
    API's TUNER_DATA_DIR gets, found before the search process imports TensorFlow.
    Quick jobs bring the four workers back to the queue together, over and over:
    more contended claims than twenty searches would make, in a fraction of the time.
    """
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    jobs = [
        submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 1})["id"]
        for _ in range(20)
    ]
    for upload in settings.datasets_dir.iterdir():
        upload.unlink()
    for _ in range(4):
        start_worker()
    for job_id in jobs:
        done = wait_for_job(api, job_id, timeout=300)
        assert done["status"] == "failed"
        assert "TUNER_DATA_DIR" in done["error"]
        assert done["attempt"] == 1  # claimed once, never taken over
    # Every claim in the four workers' logs: each job once, and the work was shared.
    claims: dict[str, list[str]] = {}
    for log in sorted(tmp_path.glob("worker-*.log")):
        for line in log.read_text().splitlines():
            if " job claimed " in line:
                job_id = line.split("job_id=")[1].split()[0]
                claims.setdefault(job_id, []).append(log.name)
    assert sorted(claims) == sorted(jobs)
    assert all(len(workers) == 1 for workers in claims.values())
    assert len({w for workers in claims.values() for w in workers}) >= 2


def test_recycling_is_decided_by_trial_count_and_by_resident_memory() -> None:
    """The RSS trigger, which the test above cannot reach without a real leak."""
    from app.settings import Settings
    from tuner_jobs.search.recycling import recycle_reason, resident_mb

    settings = Settings(recycle_trials=25, recycle_rss_mb=2048)
    assert recycle_reason(3, 900.0, settings) is None
    assert "25 trial(s)" in str(recycle_reason(25, 900.0, settings))
    assert "2100 MB" in str(recycle_reason(3, 2100.0, settings))
    # This process's real resident size, as the search process reads its own.
    assert 10 < resident_mb() < 100_000
