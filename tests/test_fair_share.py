"""Fair share between API keys: the claim takes the oldest job of the owner with the fewest
jobs running, then with the fewest run recently, and each key has a cap on jobs queued or
running. Both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from app.store.models import Job, JobStatus, utcnow
from app.store.queue import claim_job, finish_job
from app.store.unit_of_work import write_session
from tests.conftest import LiveServer, make_settings
from tests.factories import assert_problem, customers_frame, dataset_row, upload_ok


def _jobs(engine: Engine, owners: list[str | None]) -> list[str]:
    """One queued job per entry, oldest first."""
    with write_session(engine) as session:
        dataset = dataset_row()
        session.add(dataset)
        session.flush()
        start = utcnow() - timedelta(minutes=5)
        jobs = [
            Job(
                dataset_id=dataset.id,
                owner=owner,
                spec={},
                search_space={},
                trials_planned=1,
                created_at=start + timedelta(seconds=i),
            )
            for i, owner in enumerate(owners)
        ]
        session.add_all(jobs)
    return [job.id for job in jobs]


def _claim(engine: Engine, worker: str) -> str | None:
    with write_session(engine) as session:
        claim = claim_job(session=session, worker_id=worker, lease_s=30)
    return claim.job_id if claim else None


def test_a_key_with_a_long_queue_does_not_hold_back_another_keys_job(engine: Engine) -> None:
    # Key a queued 5 jobs before key b's one; b's is taken as soon as a has one running.
    ids = _jobs(engine, ["a", "a", "a", "a", "a", "b"])
    assert _claim(engine, "w1") == ids[0]
    assert _claim(engine, "w2") == ids[5]
    # Both have one running now: the oldest waiting job again.
    assert _claim(engine, "w3") == ids[1]


def _run_one(engine: Engine) -> str | None:
    """What one worker does: claim a job and run it to the end."""
    with write_session(engine) as session:
        claim = claim_job(session=session, worker_id="only", lease_s=30)
        if claim is not None:
            finish_job(session=session, claim=claim, status=JobStatus.SUCCEEDED)
    return claim.job_id if claim else None


def test_with_one_worker_a_key_that_just_ran_a_job_lets_the_other_go_first(
    engine: Engine,
) -> None:
    # Key a queued four jobs, key b one just after them. Whenever the one worker frees up
    # neither key has a job running: the one that ran less recently goes first.
    ids = _jobs(engine, ["a", "a", "a", "a", "b"])
    order = iter(lambda: _run_one(engine), None)
    assert list(order) == [ids[0], ids[4], ids[1], ids[2], ids[3]]


def test_without_keys_the_queue_stays_oldest_first(engine: Engine) -> None:
    ids = _jobs(engine, [None, None, None])
    assert [_claim(engine, f"w{i}") for i in range(4)] == [*ids, None]


@pytest.fixture
def keyed_api(database_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    settings = make_settings(
        database_url, tmp_path / "data", api_keys="key-a,key-b", max_jobs_per_key=2
    )
    with LiveServer(settings) as live:
        clients = [
            httpx.Client(base_url=live.url, timeout=30, headers={"Authorization": f"Bearer {k}"})
            for k in ("key-a", "key-b")
        ]
        yield clients[0], clients[1]
        for client in clients:
            client.close()


def test_each_key_has_a_cap_on_jobs_queued_or_running(
    keyed_api: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = keyed_api
    a_data = upload_ok(a, customers_frame(), "churned")["id"]
    b_data = upload_ok(b, customers_frame(), "churned")["id"]
    first = a.post("/api/v1/jobs", json={"dataset_id": a_data}).json()["id"]
    assert a.post("/api/v1/jobs", json={"dataset_id": a_data}).status_code == 202
    response = a.post("/api/v1/jobs", json={"dataset_id": a_data})
    assert_problem(response, 429, "TUNER_MAX_JOBS_PER_KEY=2", "2 jobs queued or running")
    # Another key is not held to a's count, and a finished job frees a place.
    assert b.post("/api/v1/jobs", json={"dataset_id": b_data}).status_code == 202
    assert a.post(f"/api/v1/jobs/{first}/cancel").status_code == 202
    assert a.post("/api/v1/jobs", json={"dataset_id": a_data}).status_code == 202
