"""An idle worker keeps a search process with TensorFlow imported; the next job runs in it.

Here the fresh spare that replaces a used-up process: TUNER_REUSE_SEARCH_PROCESSES is off,
else a job that succeeded leaves its own process as the spare
(tests/test_search_process_reuse.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, sqlite_only
from tests.factories import customers_frame, search_processes, submit, upload_ok, wait_for_job

pytestmark = pytest.mark.slow


def _has_tensorflow(pid: int) -> bool:
    return b"tensorflow" in Path(f"/proc/{pid}/maps").read_bytes()


@sqlite_only  # process management; no backend changes it
def test_an_idle_worker_has_tensorflow_ready_for_the_next_job(
    api: httpx.Client, start_worker, settings, tmp_path: Path
) -> None:
    worker = start_worker(
        settings_override=make_settings(
            settings.database_url, settings.data_dir, prewarm=True, reuse_search_processes=False
        )
    )
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "no spare search process with TensorFlow loaded"
        spares = search_processes(worker.proc.pid)
        if spares and _has_tensorflow(spares[0]):
            break
        time.sleep(0.2)
    [spare] = spares

    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 1},
    )
    done = wait_for_job(api, job["id"], timeout=120)
    assert done["status"] == "succeeded"
    # The search ran in the process that was waiting for it, not in a new one.
    log = (tmp_path / "worker-0.log").read_text()
    # (A parallel_trials "auto" job: its chief is the search process.)
    [started] = [line for line in log.splitlines() if "chief serving the oracle" in line]
    assert f"[{spare}]" in started
    # Once idle again, a fresh spare replaces the one the job used up.
    deadline = time.monotonic() + 60
    while search_processes(worker.proc.pid) in ([], [spare]):
        assert time.monotonic() < deadline, "no new spare after the job"
        time.sleep(0.2)


def _claimed_line(lines: list[str], job_id: str) -> int:
    [at] = [i for i, line in enumerate(lines) if "job claimed" in line and job_id in line]
    return at


@sqlite_only  # process management; no backend changes it
def test_a_job_that_follows_another_at_once_starts_from_a_spare(
    api: httpx.Client, start_worker, settings, tmp_path: Path
) -> None:
    """A queue that never empties: the worker is never idle between the two jobs, yet the
    second's search runs in a spare started when the first's search ended, not in a
    process spawned once the second was claimed."""
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    quick = {"tuner": {"algorithm": "random_search", "max_trials": 1}, "training": {"epochs": 1}}
    first = submit(api, dataset["id"], **quick)
    second = submit(api, dataset["id"], **quick)
    start_worker(
        settings_override=make_settings(
            settings.database_url, settings.data_dir, prewarm=True, reuse_search_processes=False
        )
    )
    for job in (first, second):
        assert wait_for_job(api, job["id"], timeout=180)["status"] == "succeeded"
    lines = (tmp_path / "worker-0.log").read_text().splitlines()
    first_claimed, second_claimed = (_claimed_line(lines, j["id"]) for j in (first, second))
    assert first_claimed < second_claimed
    between = lines[first_claimed:second_claimed]
    spares = [line for line in between if "spare search process started" in line]
    assert spares, "no spare was started between the two jobs"
    spare = spares[-1].rsplit("spare_pid=", 1)[1].split()[0]
    # Each job's search process is its chief (a parallel_trials "auto" job); the second's
    # is the spare.
    chiefs = [line for line in lines[second_claimed:] if "chief serving the oracle" in line]
    assert chiefs, "the second job's search never started"
    assert f"[{spare}]" in chiefs[0], chiefs
