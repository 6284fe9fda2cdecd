"""An idle worker keeps a search process with TensorFlow imported; the next job runs in it."""

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
        settings_override=make_settings(settings.database_url, settings.data_dir, prewarm=True)
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
