"""The same file uploaded again with the same target is the same dataset (issue 27, item 8):
200 with the one stored before (its name kept), 201 for a new one; per API key."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pandas as pd

from app.settings import Settings
from tests.conftest import LiveServer
from tests.factories import csv_bytes, customers_frame, upload


def _files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.datasets_dir.iterdir())


def test_the_same_file_and_target_is_one_dataset(api: httpx.Client, settings: Settings) -> None:
    content = csv_bytes(customers_frame(rows=60))
    first = upload(api, content, target="churned", name="customers")
    assert first.status_code == 201, first.text

    again = upload(api, content, target="churned", name="customers, again")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # the stored dataset as it was: its name too
    # Asking for the task it was given (here inferred) is the same upload too.
    assert upload(api, content, target="churned", task="classification").status_code == 200
    assert api.get("/api/v1/datasets").json()["total"] == 1
    assert _files(settings) == [f"{first.json()['sha256']}.csv"]

    other_target = upload(api, content, target="plan")
    assert other_target.status_code == 201, other_target.text
    assert other_target.json()["id"] != first.json()["id"]
    assert _files(settings) == [f"{first.json()['sha256']}.csv"]  # one file for both


def test_another_task_is_another_dataset(api: httpx.Client) -> None:
    frame = pd.DataFrame({"a": np.arange(120) / 7, "grade": np.arange(120) % 3})
    content = csv_bytes(frame)
    inferred = upload(api, content, target="grade")
    assert (inferred.status_code, inferred.json()["task"]) == (201, "classification")
    regression = upload(api, content, target="grade", task="regression")
    assert (regression.status_code, regression.json()["task"]) == (201, "regression")
    assert upload(api, content, target="grade", task="regression").json() == regression.json()


def test_after_a_delete_the_same_upload_is_new(api: httpx.Client) -> None:
    content = csv_bytes(customers_frame(rows=60))
    first = upload(api, content, target="churned").json()
    assert api.delete(f"/api/v1/datasets/{first['id']}").status_code == 204
    again = upload(api, content, target="churned")
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"]


def test_each_key_has_its_own_dataset(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": "key-one-5b1e0c9a7d,key-two-8f2d4a6c1e"})
    content = csv_bytes(customers_frame(rows=60))
    with LiveServer(keyed) as live:
        answers = []
        for key in ("key-one-5b1e0c9a7d", "key-two-8f2d4a6c1e", "key-one-5b1e0c9a7d"):
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=live.url, timeout=30, headers=headers) as api:
                answers.append(upload(api, content, target="churned"))
    assert [a.status_code for a in answers] == [201, 201, 200]
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert answers[2].json()["id"] == answers[0].json()["id"]


def test_identical_uploads_at_once_make_one_dataset(api: httpx.Client) -> None:
    content = csv_bytes(customers_frame(rows=200))
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=api.base_url, timeout=60) as client:
            answers.append(upload(client, content, target="churned"))

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert api.get("/api/v1/datasets").json()["total"] == 1
