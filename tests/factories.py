"""Plain factory functions for test data and API calls."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import Engine

from app.store.models import Dataset, Job, utcnow
from app.store.unit_of_work import write_session

FINISHED = {"succeeded", "failed", "cancelled"}
# A search space of a few small networks, for tests whose subject is not the space: a
# trial trains in a fraction of a second on the tables below.
SMALL_SPACE: dict[str, Any] = {
    "num_layers": {"type": "int", "min": 1, "max": 2},
    "units": {"type": "pow2", "min": 8, "max": 16},
    "batch_size": {"type": "fixed", "value": 32},
}
# The same networks at one depth.
ONE_LAYER_SPACE: dict[str, Any] = {**SMALL_SPACE, "num_layers": {"type": "fixed", "value": 1}}
# How often the wait helpers below ask for a job: a GET costs the API milliseconds, and a
# test waits half an interval on average past the moment its job got there.
POLL_S = 0.1


def customers_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A small real-world-looking table: numbers, categories, gaps, awkward column names."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows).round()
    income = rng.normal(52_000, 15_000, rows).round(2)
    city = rng.choice(["Lisbon", "Porto", "Faro"], rows)
    plan = rng.choice(["basic", "pro"], rows)
    score = 0.04 * (age - 40) + (income - 52_000) / 15_000 + np.where(plan == "pro", 0.8, -0.4)
    frame = pd.DataFrame(
        {
            "age (years)": age,
            "income/yr": income,
            "home city": city,
            "plan": plan,
            "churned": np.where(score + rng.normal(0, 0.5, rows) > 0, "yes", "no"),
        }
    )
    frame.loc[frame.index % 17 == 3, "age (years)"] = np.nan
    frame.loc[frame.index % 23 == 5, "home city"] = None
    return frame


def regression_frame(rows: int = 240, features: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    frame["target value"] = x @ rng.normal(size=features) * 10 + 100 + rng.normal(0, 1, rows)
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def upload(
    api: httpx.Client,
    content: bytes,
    *,
    filename: str = "data.csv",
    target: str | None = None,
    **form: str,
) -> httpx.Response:
    data = dict(form)
    if target is not None:
        data["target"] = target
    return api.post("/api/v1/datasets", files={"file": (filename, content)}, data=data)


def upload_ok(api: httpx.Client, frame: pd.DataFrame, target: str) -> dict[str, Any]:
    response = upload(api, csv_bytes(frame), target=target)
    assert response.status_code == 201, response.text
    return response.json()


def submit(api: httpx.Client, dataset_id: str, **spec: Any) -> dict[str, Any]:
    # One validation split unless the test asks for folds: the default ("auto") would
    # run 5 folds of every trial on these tiny tables, five times the suite's search time.
    training = dict(spec.get("training") or {})
    training.setdefault("cross_validation", None)
    # No ensemble unless the test asks for one: most tests check the best trial's model,
    # which an ensemble that scores higher would replace as the job's model.
    training.setdefault("ensemble", None)
    spec["training"] = training
    response = api.post("/api/v1/jobs", json={"dataset_id": dataset_id, **spec})
    assert response.status_code == 202, response.text
    return response.json()


class Stalled:
    """A wait's deadline that follows the job's progress, not the wall clock: it moves on
    whenever the job shows something new (its status, a trial completed, an epoch done),
    so a wait fails when the job stops moving for `patience` seconds, never only because
    a loaded machine makes it slow. pytest's own timeout still bounds the whole test."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self.mark: tuple[Any, ...] | None = None
        self.deadline = time.monotonic() + patience

    def __call__(self, job: dict[str, Any]) -> bool:
        progress = job.get("progress") or {}
        current = progress.get("current_trial") or {}
        mark = (
            job["status"],
            progress.get("trials_completed"),
            current.get("trial_id"),
            current.get("epochs_run"),
            # A cross-validated trial's epochs are rewritten, not added, between folds.
            current.get("folds_completed"),
        )
        if mark != self.mark:
            self.mark, self.deadline = mark, time.monotonic() + self.patience
        return time.monotonic() > self.deadline


def wait_for_job(
    api: httpx.Client, job_id: str, *, statuses: set[str] = FINISHED, timeout: float = 240
) -> dict[str, Any]:
    """The job once its status is one of `statuses`; fails after `timeout` seconds in
    which the job made no progress (Stalled)."""
    stalled = Stalled(timeout)
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        if stalled(job):
            raise AssertionError(
                f"job {job_id} still {job['status']}, no progress in {timeout}s: {job}"
            )
        time.sleep(POLL_S)


def assert_problem(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """A problem+json error with the given status whose detail mentions each needle."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    text = (body["detail"] + " " + str(body.get("errors", ""))).lower()
    for needle in needles:
        assert needle.lower() in text, f"{needle!r} not in {body}"
    return body


def noisy_labels_frame(rows: int = 40, features: int = 5, seed: int = 0) -> pd.DataFrame:
    """A tiny classification table with mostly-noise labels: easy to memorize, hard to learn."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    signal = x[:, 0] + rng.normal(0, 1.5, rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    frame["label"] = np.where(signal > 0, "a", "b")
    return frame


def trials_of(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/api/v1/jobs/{job_id}/trials", params={"limit": 1000}).json()
    assert page["total"] == len(page["items"])
    return page["items"]


def dataset_row(task: str = "regression") -> Dataset:
    """A minimal datasets row, for tests that insert jobs and trials directly."""
    return Dataset(
        name="d",
        format="csv",
        sha256="0" * 64,
        size_bytes=1,
        rows=10,
        target="y",
        task=task,
        columns=[{"name": "x", "kind": "numeric", "missing": 0}],
        classes=["a", "b"] if task == "classification" else None,
        features=1,
    )


def insert_jobs(engine: Engine, count: int) -> list[str]:
    """`count` queued jobs on one dataset, created a millisecond apart (oldest first)."""
    with write_session(engine) as session:
        dataset = dataset_row()
        session.add(dataset)
        session.flush()
        jobs = [
            Job(
                dataset_id=dataset.id,
                spec={},
                search_space={},
                trials_planned=1,
                created_at=utcnow() + timedelta(milliseconds=i),
            )
            for i in range(count)
        ]
        session.add_all(jobs)
    return [job.id for job in jobs]


def search_processes(worker_pid: int) -> list[int]:
    """The spawned search processes under a worker (not multiprocessing's resource tracker),
    whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{worker_pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that has just ended
            continue
        for pid in children:
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except FileNotFoundError:  # a child that has just exited
                continue
    return found


def search_process(worker_pid: int) -> int:
    """The one search process under a worker."""
    found = search_processes(worker_pid)
    assert len(found) == 1, f"search processes under worker {worker_pid}: {found}"
    return found[0]


def wait_mid_trial(
    api: httpx.Client,
    job_id: str,
    *,
    epochs: int,
    completed: int = 0,
    not_this: dict[str, Any] | None = None,
    timeout: float = 180,
) -> dict[str, Any]:
    """The job once a trial is under way with an epoch done and at least two to go, so a
    signal sent now lands mid-trial, not after the trial's last epoch (a search asked to
    stop between trials stops there, with no trial to interrupt).

    `not_this`: a current trial seen before (a killed process's), which still reads as
    RUNNING until the next process starts it again; wait for a trial started since."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        current = job["progress"]["current_trial"]
        mid = current is not None and 1 <= current["epochs_run"] <= epochs - 2
        stale = (
            not_this is not None
            and current is not None
            and (current["trial_id"], current["started_at"])
            == (not_this["trial_id"], not_this["started_at"])
        )
        if job["progress"]["trials_completed"] >= completed and mid and not stale:
            return job
        time.sleep(POLL_S)
    raise AssertionError(f"job {job_id} never reached a trial in progress")
