"""parallel_trials "auto" (the default): idle workers lend a running search their time, and
take it back between trials when another job waits; and how many workers `serve` starts.
Real workers, real searches; the queue SQL behind them is in tests/test_slots.py on both
backends, so these run on SQLite."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from app.settings import Settings, serve_layout
from app.store.models import JobSlot
from tests.conftest import sqlite_only
from tests.factories import customers_frame, submit, trials_of, upload_ok, wait_for_job

# Real searches in worker processes, on SQLite (the queue SQL is checked on both backends).
search = pytest.mark.slow

SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 64},
    "batch_size": {"type": "fixed", "value": 16},
}


def _job(api: httpx.Client, dataset_id: str, *, trials: int, epochs: int, **spec: Any) -> Any:
    return submit(
        api,
        dataset_id,
        tuner={"algorithm": "random_search", "max_trials": trials},
        training={"epochs": epochs},
        callbacks={"early_stopping": False},
        pruning=None,
        search_space=SPACE,
        **spec,
    )


def _workers_of(api: httpx.Client, job_id: str) -> set[str]:
    return {t["worker"] for t in trials_of(api, job_id)}


def _wait_until(condition, what: str, timeout: float = 240) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@search
@sqlite_only
def test_one_auto_job_takes_both_workers_and_hands_one_to_a_second_job(
    api: httpx.Client, start_worker
) -> None:
    """Two workers, one job: both run its trials. A second job arrives: the worker lent to
    the first hands its slot back after its trial and takes the second job, which runs
    beside the first instead of waiting for it; both finish, every trial completed."""
    dataset = upload_ok(api, customers_frame(rows=2000), "churned")
    # 12 trials of 8 epochs (about a second each on an idle machine): the second worker's
    # tuner needs several seconds to import TensorFlow before it can help.
    first = _job(api, dataset["id"], trials=12, epochs=8)
    assert first["spec"]["parallel_trials"] == "auto"  # the default
    start_worker()
    start_worker()
    _wait_until(
        lambda: len(_workers_of(api, first["id"])) == 2,
        "the second worker never ran a trial of the auto job",
    )
    assert api.get(f"/api/v1/jobs/{first['id']}").json()["status"] == "running"

    second = _job(api, dataset["id"], trials=3, epochs=2)
    done_second = wait_for_job(api, second["id"], timeout=300)
    assert done_second["status"] == "succeeded", done_second
    done_first = wait_for_job(api, first["id"], timeout=300)
    assert done_first["status"] == "succeeded", done_first
    # No job starved: the second one started while the first was still running (without
    # the hand-back it would wait for the first's end). Which of the two ends first is the
    # machine's speed, not the feature: under load they ended 0.2 s apart either way.
    assert _at(done_second["started_at"]) < _at(done_first["finished_at"])
    # The worker that ran it is the one the first job had been lent.
    assert _workers_of(api, second["id"]) <= _workers_of(api, first["id"])
    for job in (first, second):
        trials = trials_of(api, job["id"])
        assert all(t["status"] == "COMPLETED" for t in trials), trials
    assert len({t["trial_id"] for t in trials_of(api, first["id"])}) == 12


@search
@sqlite_only
def test_an_auto_hyperband_job_runs_its_trials_on_both_workers(
    api: httpx.Client, start_worker
) -> None:
    """Hyperband's smallest rung (derived, in the resolved spec) is set on the chief's
    oracle. A tuner slot's oracle is only a client of the chief's: setting the rung there
    failed every slot, and the job ran on its chief's worker alone, one trial at a time."""
    dataset = upload_ok(api, customers_frame(rows=2000), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "hyperband", "max_epochs": 9, "factor": 3},
        training={"epochs": 9},
        callbacks={"early_stopping": False},
        search_space=SPACE,
        max_runtime_s=None,  # Hyperband's whole schedule (about 20 trials), not a budget
    )
    assert job["spec"]["tuner"]["min_epochs"] is not None
    start_worker()
    start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    trials = trials_of(api, job["id"])
    assert all(t["status"] == "COMPLETED" for t in trials), trials
    assert len(_workers_of(api, job["id"])) == 2, "one worker ran every trial"


@search
@sqlite_only
def test_two_jobs_on_two_workers_run_side_by_side(api: httpx.Client, start_worker) -> None:
    """Submitted together: each worker takes a job (a waiting job goes before a lent slot),
    and neither job waits for the other."""
    dataset = upload_ok(api, customers_frame(rows=2000), "churned")
    jobs = [_job(api, dataset["id"], trials=4, epochs=6) for _ in range(2)]
    start_worker()
    start_worker()
    done = [wait_for_job(api, job["id"], timeout=300) for job in jobs]
    assert [job["status"] for job in done] == ["succeeded", "succeeded"], done
    # Side by side: each started before the other finished, on its own worker.
    for one, other in (done, done[::-1]):
        assert _at(one["started_at"]) < _at(other["finished_at"])
    first_trials = [_first_trial_worker(api, job["id"]) for job in jobs]
    assert first_trials[0] != first_trials[1], first_trials


def _first_trial_worker(api: httpx.Client, job_id: str) -> str:
    return min(trials_of(api, job_id), key=lambda t: t["started_at"])["worker"]


@search
@sqlite_only
def test_a_job_capped_at_one_trial_never_uses_a_second_worker(
    api: httpx.Client, start_worker, settings
) -> None:
    """parallel_trials 1: the whole search in one process on one worker, two idle ones or
    not (no chief, no slot for the other worker to take)."""
    dataset = upload_ok(api, customers_frame(rows=2000), "churned")
    job = _job(api, dataset["id"], trials=6, epochs=6, parallel_trials=1)
    start_worker()
    start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    trials = trials_of(api, job["id"])
    assert len(trials) == 6
    assert len({t["worker"] for t in trials}) == 1
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            slots = conn.execute(
                select(func.count()).select_from(JobSlot).where(JobSlot.job_id == job["id"])
            ).scalar_one()
    finally:
        engine.dispose()
    assert slots == 0


@pytest.mark.parametrize(
    ("env", "cores", "layout"),
    [
        ({}, 2, (2, 1)),  # one worker per core, one TensorFlow thread each
        ({}, 16, (16, 1)),
        ({"TUNER_WORKERS": "4"}, 16, (4, 4)),  # the cores shared out between the workers
        ({"TUNER_WORKERS": "3"}, 2, (3, 1)),  # never below one thread
        ({"TUNER_WORKERS": "2", "TUNER_CHILD_THREADS": "0"}, 16, (2, 0)),  # as set: TF's own
        ({"TUNER_CHILD_THREADS": "2"}, 8, (8, 2)),
    ],
)
def test_serve_starts_a_worker_per_core_unless_told(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], cores: int, layout: tuple[int, int]
) -> None:
    for name in ("TUNER_WORKERS", "TUNER_CHILD_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert serve_layout(Settings(_env_file=None), cores=cores) == layout
