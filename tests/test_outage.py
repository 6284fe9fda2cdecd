"""A database outage (PostgreSQL refusing connections): 503 meanwhile, nothing lost after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.migrate import upgrade
from app.settings import Settings
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    LiveServer,
    WorkerProcess,
    _postgres_database,
    make_settings,
)
from tests.factories import assert_problem, customers_frame, submit, upload_ok, wait_for_job


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    for url in _postgres_database():
        upgrade(url)
        yield make_settings(url, tmp_path / "data")


@contextmanager
def outage(database_url: str) -> Iterator[None]:
    """Refuse new connections to the database and drop the open ones, then let them back."""
    name = make_url(database_url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_api_answers_503_while_the_database_is_away_and_recovers(pg_settings: Settings) -> None:
    with LiveServer(pg_settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        dataset = upload_ok(api, customers_frame(), "churned")
        with outage(pg_settings.database_url):
            assert_problem(api.get("/api/v1/datasets"), 503, "database")
            assert_problem(api.get(f"/api/v1/datasets/{dataset['id']}"), 503, "database")
            assert_problem(api.get("/healthz"), 503, "database")
        # No restart: the next request reconnects, and what was stored is all there.
        assert api.get("/healthz").status_code == 200
        assert api.get(f"/api/v1/datasets/{dataset['id']}").json() == dataset


@pytest.mark.slow
def test_a_search_waits_out_a_short_outage_and_finishes(
    pg_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with LiveServer(pg_settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        dataset = upload_ok(api, customers_frame(rows=600), "churned")
        job = submit(
            api,
            dataset["id"],
            tuner={"algorithm": "random_search", "max_trials": 3},
            training={"epochs": 10},
            callbacks={"early_stopping": False},
            search_space={
                "num_layers": {"type": "fixed", "value": 1},
                "units": {"type": "fixed", "value": 16},
                "batch_size": {"type": "fixed", "value": 8},
            },
        )
        worker = WorkerProcess(pg_settings, tmp_path / "worker.log")
        request.addfinalizer(worker.stop)
        deadline = time.monotonic() + 120
        while not api.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["epochs_run"] >= 3:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with outage(pg_settings.database_url):
            time.sleep(4)  # shorter than the lease (15 s): the job stays this worker's
        done = wait_for_job(api, job["id"], timeout=240)
        assert done["status"] == "succeeded"
        assert done["attempt"] == 1
        trials = api.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
        assert [t["status"] for t in trials] == ["COMPLETED"] * 3
        for trial in trials:
            curve = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()
            assert [m["epoch"] for m in curve["metrics"]] == list(range(10))
