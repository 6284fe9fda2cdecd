"""The database unavailable for a while: 503 meanwhile, nothing lost, no restart needed.

PostgreSQL: the database refuses connections and the open ones are dropped.
SQLite (a file, never unreachable as such): another process holds the write lock
longer than the busy timeout, as a backup or a stuck writer would.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.settings import Settings
from app.store.claims import Claim
from app.store.db import is_sqlite, make_engine
from app.store.search_gateway import SearchDatabase
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    LiveServer,
    WorkerProcess,
    make_settings,
    postgresql_only,
)
from tests.factories import (
    assert_problem,
    customers_frame,
    insert_jobs,
    submit,
    upload_ok,
    wait_for_job,
)


@pytest.fixture
def brittle(settings: Settings) -> Settings:
    """The test's settings with a short SQLite busy timeout, so a held lock is an outage."""
    return make_settings(settings.database_url, settings.data_dir, sqlite_busy_timeout_s=0.5)


@contextmanager
def outage(database_url: str) -> Iterator[None]:
    database = make_url(database_url).database
    if is_sqlite(database_url):
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": database},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_api_answers_503_while_the_database_is_away_and_recovers(brittle: Settings) -> None:
    with LiveServer(brittle) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        dataset = upload_ok(api, customers_frame(), "churned")
        with outage(brittle.database_url):
            assert_problem(api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]}), 503)
            if not is_sqlite(brittle.database_url):  # SQLite readers are not blocked (WAL)
                assert_problem(api.get(f"/api/v1/datasets/{dataset['id']}"), 503, "database")
                assert_problem(api.get("/healthz"), 503, "database")
        # No restart: the next request goes through, and what was stored is all there.
        assert api.get("/healthz").status_code == 200
        assert api.get(f"/api/v1/datasets/{dataset['id']}").json() == dataset
        assert api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]}).status_code == 202
        assert api.get("/api/v1/jobs").json()["total"] == 1  # the refused submit left nothing


@pytest.mark.slow
def test_a_search_waits_out_a_short_outage_and_finishes(
    brittle: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with LiveServer(brittle) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        dataset = upload_ok(api, customers_frame(rows=600), "churned")
        job = submit(
            api,
            dataset["id"],
            tuner={"algorithm": "random_search", "max_trials": 3},
            training={"epochs": 10},
            callbacks={"early_stopping": False},
            pruning=None,  # every trial runs all its epochs: the test counts them
            search_space={
                "num_layers": {"type": "fixed", "value": 1},
                "units": {"type": "fixed", "value": 16},
                "batch_size": {"type": "fixed", "value": 8},
            },
        )
        worker = WorkerProcess(brittle, tmp_path / "worker.log")
        request.addfinalizer(worker.stop)
        deadline = time.monotonic() + 120
        while not api.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["epochs_run"] >= 3:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with outage(brittle.database_url):
            time.sleep(4)  # shorter than the lease (15 s): the job stays this worker's
        done = wait_for_job(api, job["id"], timeout=240)
        assert done["status"] == "succeeded"
        assert done["attempt"] == 1
        trials = api.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
        assert [t["status"] for t in trials] == ["COMPLETED"] * 3
        for trial in trials:
            curve = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()
            assert [m["epoch"] for m in curve["metrics"]] == list(range(10))
    assert "database unavailable; retrying" in (tmp_path / "worker.log").read_text()


@postgresql_only  # SQLite's readers are not blocked by a held write lock (WAL)
def test_the_model_card_waits_out_an_outage_instead_of_going_without(
    settings: Settings,
) -> None:
    """The card is read back from the database as the model is exported: during an outage
    that read waits, as the search's writes do, instead of failing (the model was then
    installed without a card, or beside an older trial's)."""
    engine = make_engine(settings.database_url)
    (job_id,) = insert_jobs(engine, 1)
    database = SearchDatabase(engine, Claim(job_id, attempt=1, worker_id="w"), outage_s=30)
    read: dict[str, object] = {}
    reader = threading.Thread(target=lambda: read.update(facts=database.card_facts([])))
    with outage(settings.database_url):
        reader.start()
        time.sleep(2)
        assert reader.is_alive(), read  # waiting for the database, not failed
    reader.join(30)
    assert read["facts"].trials_completed == 0  # type: ignore[attr-defined]
    database.dispose()


@postgresql_only  # SQLite's readers are not blocked by a held write lock (WAL)
def test_a_chiefs_reads_at_its_searchs_end_wait_out_an_outage(settings: Settings) -> None:
    """When its own trials run out, a parallel job's chief reads its tuner slots and the
    trials still RUNNING: during an outage those reads wait, as its writes do, instead of
    failing the job (seen in the cluster test: PostgreSQL stopped for 4 s at that moment)."""
    engine = make_engine(settings.database_url)
    (job_id,) = insert_jobs(engine, 1)
    database = SearchDatabase(engine, Claim(job_id, attempt=1, worker_id="w"), outage_s=30)
    read: dict[str, object] = {}

    def reads() -> None:
        read["slots"] = database.tuner_slots()
        read["running"] = database.unreported_trials()

    reader = threading.Thread(target=reads)
    with outage(settings.database_url):
        reader.start()
        time.sleep(2)
        assert reader.is_alive(), read  # waiting for the database, not failed
    reader.join(30)
    assert read == {"slots": [], "running": []}
    database.dispose()
