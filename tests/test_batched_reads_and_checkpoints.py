"""Batched reads, niceness and checkpoints keep their promises (benchmarks/ measures how fast):
GET /jobs reads a page in a fixed number of queries, and the batched read gives what
one job's read gives; search processes run below the API's priority; KerasTuner's
best-epoch checkpoint, written once per fit, holds what it would have held."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.models import Job, JobStatus, Trial, TrialStatus, utcnow
from tests.conftest import LiveServer, sqlite_only
from tests.factories import (
    dataset_row,
    noisy_labels_frame,
    search_processes,
    submit,
    upload_ok,
    wait_for_job,
)


def _job(dataset_id: str, direction: str, status: str = JobStatus.SUCCEEDED) -> Job:
    name = "val_accuracy" if direction == "max" else "val_loss"
    return Job(
        dataset_id=dataset_id,
        status=status,
        spec={"objective": {"name": name, "direction": direction}},
        search_space={},
        trials_planned=4,
    )


def _trial(job: Job, trial_id: str, status: str, score: float | None, **values: Any) -> Trial:
    return Trial(
        job_id=job.id,
        trial_id=trial_id,
        status=status,
        hyperparameters={"units_0": int(trial_id)},
        score=score,
        epochs_run=3,
        **values,
    )


def _add_jobs(engine: Engine, count: int) -> dict[str, str]:
    """`count` jobs alternating max/min objectives, each with scored, unscored and failed
    trials; returns job id -> the trial id that must be its best."""
    expected: dict[str, str] = {}
    with Session(engine) as session, session.begin():
        dataset = dataset_row("classification")
        session.add(dataset)
        session.flush()
        for n in range(count):
            direction = "max" if n % 2 == 0 else "min"
            job = _job(dataset.id, direction)
            session.add(job)
            session.flush()
            session.add_all(
                [
                    _trial(job, "00", TrialStatus.COMPLETED, 0.5),
                    _trial(job, "01", TrialStatus.COMPLETED, 0.9),
                    _trial(job, "02", TrialStatus.COMPLETED, 0.1),
                    # Ties break on trial id, like a page of trials by score.
                    _trial(job, "03", TrialStatus.COMPLETED, 0.9 if direction == "max" else 0.1),
                    _trial(job, "04", TrialStatus.FAILED, None),
                    _trial(job, "05", TrialStatus.FAILED, 5.0 if direction == "max" else -5.0),
                ]
            )
            expected[job.id] = "01" if direction == "max" else "02"
    return expected


@pytest.fixture
def client_and_statements(settings: Settings) -> Iterator[tuple[httpx.Client, list[str]]]:
    """The live API over HTTP, with every SQL statement it sends recorded."""
    statements: list[str] = []
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:

        @event.listens_for(live.server.config.app.state.engine, "before_cursor_execute")
        def _record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        yield client, statements


def test_job_list_reads_a_page_in_a_fixed_number_of_queries(
    client_and_statements: tuple[httpx.Client, list[str]], engine: Engine
) -> None:
    client, statements = client_and_statements
    _add_jobs(engine, 3)
    statements.clear()
    assert client.get("/api/v1/jobs", params={"limit": 100}).json()["total"] == 3
    few = len(statements)

    _add_jobs(engine, 40)
    statements.clear()
    page = client.get("/api/v1/jobs", params={"limit": 100}).json()
    assert page["total"] == len(page["items"]) == 43
    # Count, page, progress, best per objective direction (+ BEGIN): not one per job.
    assert len(statements) == few <= 7, statements


def test_listed_jobs_read_like_each_job_read_alone(
    client_and_statements: tuple[httpx.Client, list[str]], engine: Engine
) -> None:
    client, _ = client_and_statements
    expected = _add_jobs(engine, 4)
    with Session(engine) as session, session.begin():
        dataset_id = session.get_one(Job, next(iter(expected))).dataset_id
        running = _job(dataset_id, "max", JobStatus.RUNNING)
        empty = _job(dataset_id, "min", JobStatus.QUEUED)
        session.add_all([running, empty])
        session.flush()
        now = utcnow()
        session.add_all(
            [
                _trial(running, "00", TrialStatus.COMPLETED, 0.3),
                _trial(running, "01", TrialStatus.RUNNING, None, started_at=now),
                # Two at once (parallel trials): the latest started is the current one.
                _trial(running, "02", TrialStatus.RUNNING, None, started_at=now + timedelta(1)),
            ]
        )
        expected[running.id] = "00"
        running_id, empty_id = running.id, empty.id

    listed = {job["id"]: job for job in client.get("/api/v1/jobs").json()["items"]}
    assert listed.keys() == {*expected, empty_id}
    for job_id, job in listed.items():
        alone = client.get(f"/api/v1/jobs/{job_id}").json()
        assert job == alone
        if job_id == empty_id:
            assert job["best"] is None
            assert job["progress"]["trials_completed"] == job["progress"]["epochs_run"] == 0
            continue
        assert job["best"]["trial_id"] == expected[job_id]
        if job_id == running_id:
            assert job["progress"]["current_trial"]["trial_id"] == "02"
            assert job["progress"]["trials_completed"] == 1
            assert job["progress"]["epochs_run"] == 9
        else:
            assert job["progress"]["current_trial"] is None
            # COMPLETED trials only: the two FAILED ones are finished, not completed.
            assert job["progress"]["trials_completed"] == 4
            assert job["progress"]["epochs_run"] == 18


def _niceness(pid: int) -> int:
    # /proc/<pid>/stat: the command name is in parentheses; nice is field 19.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.slow
@sqlite_only
def test_search_process_runs_at_the_configured_lower_priority(
    api: httpx.Client, start_worker, settings: Settings
) -> None:
    dataset = upload_ok(api, noisy_labels_frame(), "label")
    worker = start_worker(
        settings_override=settings.model_copy(update={"worker_nice": 7, "prewarm": False})
    )
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 2},
    )
    # A spawned child starts at its parent's niceness and lowers its own priority as soon
    # as it runs our code (before it imports TensorFlow): wait for that.
    niceness: dict[int, int] = {}
    deadline = time.monotonic() + 120
    while 7 not in niceness.values() and time.monotonic() < deadline:
        for pid in search_processes(worker.proc.pid):
            try:
                niceness[pid] = _niceness(pid)
            except (OSError, ValueError):  # it exited between the listing and the read
                pass
        time.sleep(0.05)
    assert 7 in niceness.values(), niceness
    assert _niceness(worker.proc.pid) == 0  # the supervisor (and the API) keep theirs
    assert wait_for_job(api, job["id"])["status"] == "succeeded"


def test_best_epoch_checkpoint_written_once_holds_the_best_epoch(tmp_path: Path) -> None:
    import keras
    import keras_tuner as kt

    from tuner_jobs.search.checkpoint import buffer_best_epoch
    from tuner_jobs.search.keras_tuner_compat import SaveBestEpoch

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    objective = kt.Objective("val_loss", "min")
    direct = SaveBestEpoch(objective, str(tmp_path / "direct.weights.h5"))
    buffered = buffer_best_epoch([SaveBestEpoch(objective, str(tmp_path / "once.weights.h5"))])
    # A rising learning rate makes later epochs worse: the best epoch is not the last.
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, _lr: 0.01 * 4**epoch)
    history = model.fit(
        x, y, validation_split=0.25, epochs=6, verbose=0, callbacks=[schedule, direct, *buffered]
    )
    losses = history.history["val_loss"]
    assert int(np.argmin(losses)) < len(losses) - 1

    def weights(name: str) -> list[np.ndarray]:
        copy = keras.models.clone_model(model)
        copy.load_weights(tmp_path / name)
        return copy.get_weights()

    for a, b in zip(weights("direct.weights.h5"), weights("once.weights.h5"), strict=True):
        np.testing.assert_array_equal(a, b)
    # The model itself ends with its last epoch's weights, as without the buffer.
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(model.get_weights(), weights("once.weights.h5"), strict=True)
    )


def test_disk_usage_is_walked_again_when_the_job_changes_status(tmp_path: Path) -> None:
    from app.store.disk_usage import cached_directory_bytes

    (tmp_path / "a").write_bytes(b"x" * 10)
    assert cached_directory_bytes(tmp_path, "running") == 10
    (tmp_path / "b").write_bytes(b"x" * 5)
    # Polls of a running job within a few seconds reuse the last walk...
    assert cached_directory_bytes(tmp_path, "running") == 10
    # ...and the finished job reports what its directory holds at once.
    assert cached_directory_bytes(tmp_path, "succeeded") == 15
