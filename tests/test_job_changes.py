"""A job's name (given at submission, changed with PATCH) and deleting a finished job."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine, func, select

from app.settings import Settings
from app.store.job_files import job_dir
from app.store.models import Job, Trial, TrialEpoch, TrialStatus
from app.store.unit_of_work import write_session
from tests.factories import assert_problem, customers_frame, submit, upload_ok


def _dataset(api: httpx.Client) -> str:
    return upload_ok(api, customers_frame(rows=40), "churned")["id"]


def test_a_name_given_at_submission_is_the_jobs_and_patch_changes_it(api: httpx.Client) -> None:
    job = submit(api, _dataset(api), name="churn, first try")
    assert job["name"] == "churn, first try"
    assert "name" not in job["spec"]  # the label is the job's, not part of the search
    renamed = api.patch(f"/api/v1/jobs/{job['id']}", json={"name": "churn v2"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "churn v2"
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["name"] == "churn v2"
    (listed,) = api.get("/api/v1/jobs").json()["items"]
    assert listed["name"] == "churn v2"
    cleared = api.patch(f"/api/v1/jobs/{job['id']}", json={"name": None})
    assert cleared.json()["name"] is None


def test_bad_renames_are_refused(api: httpx.Client) -> None:
    job = submit(api, _dataset(api))
    assert_problem(api.patch(f"/api/v1/jobs/{job['id']}", json={"name": "x" * 201}), 422, "name")
    assert_problem(api.patch(f"/api/v1/jobs/{job['id']}", json={"status": "succeeded"}), 422)
    assert_problem(api.patch("/api/v1/jobs/nope", json={"name": "a"}), 404)
    assert_problem(api.post("/api/v1/jobs", json={"dataset_id": "x", "name": "y" * 201}), 422)


def test_a_queued_job_cannot_be_deleted(api: httpx.Client) -> None:
    job = submit(api, _dataset(api))
    assert_problem(api.delete(f"/api/v1/jobs/{job['id']}"), 409, "queued", "cancel")
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 200


def test_deleting_a_finished_job_removes_its_rows_and_files(
    api: httpx.Client, engine: Engine, settings: Settings
) -> None:
    dataset = _dataset(api)
    job = submit(api, dataset)
    keep = submit(api, dataset)
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    with write_session(engine) as session:  # what a search would have left behind
        trial = Trial(
            job_id=job["id"], trial_id="0", status=TrialStatus.COMPLETED, hyperparameters={}
        )
        session.add(trial)
        session.flush()
        session.add(TrialEpoch(trial_pk=trial.id, epoch=0, loss=1.0, metrics={}))
    files = job_dir(settings, job["id"])
    (files / "project").mkdir(parents=True)
    (files / "best_model.keras").write_bytes(b"model")

    answer = api.delete(f"/api/v1/jobs/{job['id']}")
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert_problem(api.get(f"/api/v1/jobs/{job['id']}"), 404)
    assert_problem(api.delete(f"/api/v1/jobs/{job['id']}"), 404)
    assert not files.exists()
    with write_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Trial)) == 0
        assert session.scalar(select(func.count()).select_from(TrialEpoch)) == 0
        assert session.get(Job, keep["id"]) is not None  # the other job is untouched
    assert api.get(f"/api/v1/jobs/{keep['id']}").status_code == 200
