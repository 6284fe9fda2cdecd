"""GET /metrics with API keys: a key (or TUNER_METRICS_TOKEN, when set) is needed, and worker
host names and process ids never show. Both backends."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.store.db import make_engine
from app.store.models import Job, JobStatus, utcnow
from app.store.unit_of_work import write_session
from tests.conftest import LiveServer, make_settings
from tests.factories import assert_problem, dataset_row


def _running_job(database_url: str, worker_id: str) -> None:
    engine = make_engine(database_url)
    with write_session(engine) as session:
        dataset = dataset_row()
        session.add(dataset)
        session.flush()
        now = utcnow()
        session.add(
            Job(
                dataset_id=dataset.id,
                spec={},
                search_space={},
                trials_planned=1,
                status=JobStatus.RUNNING,
                lease_owner=worker_id,
                lease_expires_at=now + timedelta(seconds=30),
                heartbeat_at=now,
                attempt=1,
            )
        )
    engine.dispose()


def test_metrics_need_a_key_and_hide_worker_hosts_and_pids(
    database_url: str, tmp_path: Path
) -> None:
    worker_id = f"{socket.gethostname()}:4242:abcdef"
    _running_job(database_url, worker_id)
    settings = make_settings(database_url, tmp_path / "data", api_keys="key-a")
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        assert_problem(api.get("/metrics"), 401, "API key")
        assert_problem(api.get("/metrics", headers={"Authorization": "Bearer nope"}), 401)
        response = api.get("/metrics", headers={"Authorization": "Bearer key-a"})
    assert response.status_code == 200
    assert "tuner_worker_last_heartbeat_timestamp_seconds{worker=" in response.text
    assert socket.gethostname() not in response.text
    assert "4242" not in response.text


@pytest.mark.parametrize("api_keys", [None, "key-a"])
def test_a_metrics_token_is_the_only_way_in_when_set(
    database_url: str, tmp_path: Path, api_keys: str | None
) -> None:
    settings = make_settings(
        database_url, tmp_path / "data", api_keys=api_keys, metrics_token="scrape-me"
    )
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        assert_problem(api.get("/metrics"), 401)
        assert_problem(api.get("/metrics", headers={"Authorization": "Bearer key-a"}), 401)
        ok = api.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200
        assert "tuner_queue_depth" in ok.text
