"""A job's notes (set at submission, changed with PATCH at any point of its life) and the
job list's server-side filters: `q` (name, id, notes, dataset's name) and `dataset_id`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.models import Job, JobStatus
from app.store.unit_of_work import write_session
from tests.cli_support import COMMAND, cli, run_command
from tests.conftest import LiveServer, sqlite_only
from tests.factories import assert_problem, csv_bytes, customers_frame, submit, upload
from tuner_client import Client, InvalidRequest

JOBS = "/api/v1/jobs"


def _dataset(api: httpx.Client, filename: str, seed: int = 0) -> str:
    response = upload(
        api, csv_bytes(customers_frame(rows=40, seed=seed)), filename=filename, target="churned"
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _ids(api: httpx.Client, **params: Any) -> tuple[list[str], int]:
    response = api.get(JOBS, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    return [job["id"] for job in page["items"]], page["total"]


def test_notes_given_at_submission_are_returned_everywhere(api: httpx.Client) -> None:
    notes = "Baseline run.\nTry a wider first layer next."
    job = submit(api, _dataset(api, "churn.csv"), notes=notes)
    assert job["notes"] == notes
    assert "notes" not in job["spec"]  # the user's text is the job's, not part of the search
    assert api.get(f"{JOBS}/{job['id']}").json()["notes"] == notes
    (listed,) = api.get(JOBS).json()["items"]
    assert listed["notes"] == notes
    other = submit(api, _dataset(api, "other.csv", seed=1))
    assert other["notes"] is None


def test_patch_changes_notes_of_queued_running_and_finished_jobs(
    api: httpx.Client, engine: Engine
) -> None:
    dataset = _dataset(api, "churn.csv")
    queued, running, finished = (submit(api, dataset, name=f"job {i}") for i in range(3))
    with write_session(engine) as session:  # as a worker's claim would leave it
        session.execute(update(Job).where(Job.id == running["id"]).values(status=JobStatus.RUNNING))
    assert api.post(f"{JOBS}/{finished['id']}/cancel").json()["status"] == "cancelled"

    for job in (queued, running, finished):
        text = f"notes on {job['name']}: <b>not markup</b> & 100% of it kept"
        answer = api.patch(f"{JOBS}/{job['id']}", json={"notes": text})
        assert answer.status_code == 200, answer.text
        assert answer.json()["notes"] == text
        assert answer.json()["name"] == job["name"]  # a field not sent is left as it was
        assert api.get(f"{JOBS}/{job['id']}").json()["notes"] == text
    assert api.get(f"{JOBS}/{running['id']}").json()["status"] == "running"

    # Renaming leaves the notes; null clears them; the longest allowed is kept whole.
    renamed = api.patch(f"{JOBS}/{finished['id']}", json={"name": "renamed"}).json()
    assert renamed["notes"].startswith("notes on job 2")
    assert api.patch(f"{JOBS}/{finished['id']}", json={"notes": None}).json()["notes"] is None
    longest = "é" * 10_000
    kept = api.patch(f"{JOBS}/{queued['id']}", json={"notes": longest})
    assert kept.status_code == 200, kept.text
    assert api.get(f"{JOBS}/{queued['id']}").json()["notes"] == longest


def test_notes_longer_than_the_limit_are_refused_before_any_write(api: httpx.Client) -> None:
    dataset = _dataset(api, "churn.csv")
    job = submit(api, dataset, notes="first")
    too_long = "x" * 10_001
    assert_problem(api.patch(f"{JOBS}/{job['id']}", json={"notes": too_long}), 422, "notes")
    assert api.get(f"{JOBS}/{job['id']}").json()["notes"] == "first"
    assert_problem(api.patch(f"{JOBS}/{job['id']}", json={"notes": 5}), 422, "notes")
    body = {"dataset_id": dataset, "notes": too_long, "training": {"cross_validation": None}}
    assert_problem(api.post(JOBS, json=body), 422, "notes")
    assert _ids(api)[1] == 1  # nothing queued


def test_q_matches_name_id_notes_and_dataset_name_case_insensitively(api: httpx.Client) -> None:
    churn = _dataset(api, "Customer_Churn.csv")
    iris = _dataset(api, "flowers.csv", seed=1)
    named = submit(api, churn, name="Wide Layers")
    noted = submit(api, iris, notes="tried the Adam optimizer with warmup")
    plain = submit(api, iris)

    assert _ids(api, q="wide layers") == ([named["id"]], 1)
    assert _ids(api, q="ADAM") == ([noted["id"]], 1)
    assert _ids(api, q="customer_churn") == ([named["id"]], 1)  # the dataset's name
    assert _ids(api, q="FLOWERS") == ([plain["id"], noted["id"]], 2)  # newest first
    assert _ids(api, q=plain["id"][4:12].upper()) == ([plain["id"]], 1)  # part of its id
    assert _ids(api, q="  adam  ") == ([noted["id"]], 1)  # the search box's spaces
    assert _ids(api, q="nothing like this") == ([], 0)
    assert _ids(api, q="")[1] == 3  # an empty search is no filter


def test_percent_and_underscore_in_q_are_plain_characters(api: httpx.Client) -> None:
    dataset = _dataset(api, "plain.csv")
    percent = submit(api, dataset, name="dropout 50% on")
    underscore = submit(api, dataset, notes="lr_schedule cosine")
    submit(api, dataset, name="dropout 50 percent")  # `%` as a wildcard would match it
    submit(api, dataset, name="lrXschedule")  # `_` as a wildcard would match it
    backslash = submit(api, dataset, name=r"C:\runs\a")

    assert _ids(api, q="50%") == ([percent["id"]], 1)
    assert _ids(api, q="%") == ([percent["id"]], 1)
    assert _ids(api, q="lr_s") == ([underscore["id"]], 1)
    assert _ids(api, q="_")[0] == [underscore["id"]]
    assert _ids(api, q="\\runs\\") == ([backslash["id"]], 1)
    assert _ids(api, q="/") == ([], 0)  # the escape character itself is a plain one too


def test_dataset_id_status_q_and_paging_combine_and_total_counts_the_matches(
    api: httpx.Client,
) -> None:
    first = _dataset(api, "first.csv")
    second = _dataset(api, "second.csv", seed=1)
    on_first = [submit(api, first, name=f"sweep {i}")["id"] for i in range(5)]
    on_second = [submit(api, second, name=f"sweep {i}")["id"] for i in range(2)]
    for job_id in on_first[:2]:
        assert api.post(f"{JOBS}/{job_id}/cancel").json()["status"] == "cancelled"

    assert _ids(api, dataset_id=second) == (on_second[::-1], 2)
    assert _ids(api, dataset_id=first)[1] == 5
    assert _ids(api, dataset_id=first, status="queued") == (on_first[:1:-1], 3)
    assert _ids(api, dataset_id=first, status="cancelled", q="sweep 1") == ([on_first[1]], 1)
    assert _ids(api, q="sweep") == ([*on_second[::-1], *on_first[::-1]][:50], 7)
    page = _ids(api, q="sweep", status="queued", limit=2, offset=2)
    assert page == ([on_first[4], on_first[3]], 5)  # newest first: 2 on second, then first
    assert _ids(api, q="sweep", dataset_id=first, limit=2, offset=4) == ([on_first[0]], 5)
    assert _ids(api, dataset_id="no-such-dataset") == ([], 0)
    assert _ids(api, dataset_id="nul\x00") == ([], 0)
    assert _ids(api, q="nul\x00") == ([], 0)


def test_a_search_never_finds_another_keys_jobs(settings: Settings) -> None:
    keys = ("notes-key-a-5c1e9b7d", "notes-key-b-2f8a4c6e")
    keyed = settings.model_copy(update={"api_keys": ",".join(keys)})
    with LiveServer(keyed) as live:
        a, b = (
            httpx.Client(base_url=live.url, timeout=30, headers={"Authorization": f"Bearer {k}"})
            for k in keys
        )
        with a, b:
            theirs = submit(a, _dataset(a, "shared-name.csv"), notes="secret plan")
            mine = submit(b, _dataset(b, "shared-name.csv"))
            assert _ids(b, q="secret") == ([], 0)
            assert _ids(b, q="shared-name") == ([mine["id"]], 1)
            assert _ids(b, q=theirs["id"]) == ([], 0)
            assert _ids(b, dataset_id=theirs["dataset_id"]) == ([], 0)
            assert _ids(a, q="secret") == ([theirs["id"]], 1)


def test_bad_filters_are_refused(api: httpx.Client) -> None:
    assert_problem(api.get(JOBS, params={"q": "x" * 201}), 422, "q")
    assert_problem(api.get(JOBS, params={"dataset_id": "d" * 65}), 422, "dataset_id")
    assert api.get(JOBS, params={"q": "x" * 200}).status_code == 200


# --- The client and the CLI (queued jobs: no worker, no search) ------------------------------


@sqlite_only
def test_client_sets_notes_and_filters_jobs(api: httpx.Client) -> None:
    first = _dataset(api, "first.csv")
    second = _dataset(api, "second.csv", seed=1)
    with Client(str(api.base_url)) as client:
        job = client.submit(first, max_trials=1, name="night run", notes="from the client")
        other = client.submit(second, max_trials=1)
        assert job["notes"] == "from the client"
        assert client.set_notes(job, "changed")["notes"] == "changed"
        assert client.job(job["id"])["notes"] == "changed"
        with pytest.raises(InvalidRequest, match="notes"):
            client.set_notes(job, "x" * 10_001)
        assert [j["id"] for j in client.jobs(search="CHANGED")] == [job["id"]]
        assert [j["id"] for j in client.jobs(dataset=second)] == [other["id"]]
        assert [j["id"] for j in client.jobs(status="queued", search="second.csv")] == [other["id"]]
        assert client.jobs(search="night", dataset=second) == []
        assert client.set_notes(job["id"], None)["notes"] is None


@sqlite_only
def test_cli_note_submit_notes_show_and_jobs_search(api: httpx.Client, tmp_path: Path) -> None:
    env = {"TUNER_URL": str(api.base_url)}
    dataset = _dataset(api, "customers.csv")
    other = submit(api, _dataset(api, "other.csv", seed=1), name="unrelated")
    submitted = cli("submit", "--dataset", dataset, "--max-trials", "1", "--name", "noted",
                    "--notes", "first try, wide layers", cwd=tmp_path, env=env)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert api.get(f"{JOBS}/{job_id}").json()["notes"] == "first try, wide layers"

    shown = cli("show", job_id[:8], cwd=tmp_path, env=env)
    assert "notes     first try, wide layers" in shown.stdout
    assert "notes" not in cli("status", other["id"], cwd=tmp_path, env=env).stdout

    changed = cli("note", job_id[:8], "line one\nline two", cwd=tmp_path, env=env)
    assert changed.returncode == 0, changed.stderr
    assert f"job {job_id}: notes saved" in changed.stdout
    assert api.get(f"{JOBS}/{job_id}").json()["notes"] == "line one\nline two"
    assert cli("note", job_id, cwd=tmp_path, env=env).stdout == "line one\nline two\n"
    shown = cli("status", job_id, cwd=tmp_path, env=env).stdout
    assert "notes     line one\n          line two\n" in shown

    # A finished job's notes change too.
    assert api.post(f"{JOBS}/{job_id}/cancel").json()["status"] == "cancelled"
    piped = run_command(["sh", "-c", 'echo "from stdin" | "$0" "$@"', *COMMAND],
                        "note", job_id, "-", cwd=tmp_path, env=env)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert api.get(f"{JOBS}/{job_id}").json()["notes"] == "from stdin\n"

    too_long = cli("note", job_id, "x" * 10_001, cwd=tmp_path, env=env)
    assert too_long.returncode == 1
    assert "notes" in too_long.stderr
    cleared = cli("note", job_id, "--clear", cwd=tmp_path, env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert api.get(f"{JOBS}/{job_id}").json()["notes"] is None

    assert api.patch(f"{JOBS}/{job_id}", json={"notes": "searchable words"}).status_code == 200
    found = cli("jobs", "--search", "SEARCHABLE", cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    assert "noted" in found.stdout
    assert "unrelated" not in found.stdout
    by_dataset = cli("jobs", "--dataset", dataset[:10], cwd=tmp_path, env=env)
    assert "noted" in by_dataset.stdout
    assert "unrelated" not in by_dataset.stdout
    none = cli("jobs", "--search", "nothing like it", cwd=tmp_path, env=env)
    assert none.returncode == 0
    assert "no jobs match" in none.stderr
