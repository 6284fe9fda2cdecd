"""Job listing and the database settings the queue relies on."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from app.store.db import make_engine
from tests.factories import assert_problem, csv_bytes, customers_frame, submit, upload, upload_ok


def test_jobs_list_filters_by_status_and_pages(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    ids = [submit(api, dataset["id"])["id"] for _ in range(3)]
    cancelled = api.post(f"/api/v1/jobs/{ids[0]}/cancel").json()
    assert cancelled["status"] == "cancelled"

    page = api.get("/api/v1/jobs", params={"limit": 2}).json()
    assert page["total"] == 3
    assert page["limit"] == 2
    assert page["offset"] == 0
    assert [j["id"] for j in page["items"]] == [ids[2], ids[1]]  # newest first
    rest = api.get("/api/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in rest["items"]] == [ids[0]]

    queued = api.get("/api/v1/jobs", params={"status": "queued"}).json()
    assert queued["total"] == 2
    assert {j["id"] for j in queued["items"]} == set(ids[1:])
    assert api.get("/api/v1/jobs", params={"status": "cancelled"}).json()["total"] == 1
    assert_problem(api.get("/api/v1/jobs", params={"status": "sleeping"}), 422, "status")
    assert_problem(api.get("/api/v1/jobs", params={"limit": 0}), 422, "limit")
    assert_problem(api.get(f"/api/v1/jobs/{ids[1]}/trials", params={"order": "x"}), 422, "order")
    assert api.get(f"/api/v1/jobs/{ids[1]}/trials").json() == {
        "items": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }
    assert_problem(api.get(f"/api/v1/jobs/{ids[1]}/best"), 404, "no completed trial")


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    engine.dispose()


def test_every_job_response_names_its_own_dataset(api: httpx.Client) -> None:
    names = ("alpha.csv", "beta.csv")
    datasets = [
        upload(api, csv_bytes(customers_frame(seed=i)), filename=n, target="churned").json()
        for i, n in enumerate(names)
    ]
    ids = [submit(api, d["id"])["id"] for d in datasets]

    listed = {j["id"]: j["dataset_name"] for j in api.get("/api/v1/jobs").json()["items"]}
    assert listed == dict(zip(ids, names, strict=True))
    for job_id, name in zip(ids, names, strict=True):
        assert api.get(f"/api/v1/jobs/{job_id}").json()["dataset_name"] == name
    renamed = api.patch(f"/api/v1/jobs/{ids[0]}", json={"name": "first"}).json()
    assert renamed["dataset_name"] == "alpha.csv"
    assert api.post(f"/api/v1/jobs/{ids[1]}/cancel").json()["dataset_name"] == "beta.csv"
