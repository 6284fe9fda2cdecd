"""Workers that die are replaced and said to be dead: `serve` restarts a worker killed or
stopped under it (the job resumes on the replacement), /healthz is degraded while no worker
is alive, a worker whose lease was taken over logs it and /metrics counts it, and a search
process over its memory cap fails its job saying it ran out of memory (one killed by a
SIGKILL from outside: tests/test_resilience.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import ROOT, LiveServer, WorkerProcess, make_settings, settings_env, sqlite_only
from tests.factories import (
    customers_frame,
    search_processes,
    submit,
    upload_ok,
    wait_for_job,
    wait_mid_trial,
)

pytestmark = [pytest.mark.slow, sqlite_only]

# Short leases, so a dead worker's job is claimable again within seconds.
FAST = {"lease_s": 3.0, "heartbeat_s": 0.3, "max_attempts": 5}
EPOCHS = 5
ROWS = 2500  # an epoch lasts long enough to signal a worker mid-trial
SLOW_TRIALS = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 16},
    "batch_size": {"type": "fixed", "value": 8},
}


def _wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _workers(pid: int) -> list[int]:
    """The worker processes `serve` (pid) runs, whichever of its threads started them (the
    API's other children, an upload's profiler or multiprocessing's tracker, are not)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that has just ended
            continue
        for child in children:
            try:
                if b"tuner_jobs.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except FileNotFoundError:  # reaped meanwhile
                continue
    return found


def _exists(pid: int) -> bool:
    """Whether the process is still there, as a zombie too (nobody reaped it)."""
    return Path(f"/proc/{pid}").exists()


def _metric(api: httpx.Client, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", api.get("/metrics").text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def _slow_job(api: httpx.Client) -> str:
    dataset = upload_ok(api, customers_frame(rows=ROWS), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2},
        training={"epochs": EPOCHS, "ensemble": None},
        callbacks={"early_stopping": False},
        pruning=None,
        parallel_trials=1,
        search_space=SLOW_TRIALS,
    )
    return str(job["id"])


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`tuner-service serve` with one worker, as a real process; its log file's path."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = settings_env(make_settings(settings.database_url, settings.data_dir, **FAST))
    env.update(TUNER_WORKERS="1", TUNER_PORT=str(port))
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").json().get("status") == "ok"
    except httpx.HTTPError:
        return False


def test_serve_replaces_a_worker_that_is_stopped_or_killed_and_the_job_finishes(
    serve: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    process, url = serve
    with httpx.Client(base_url=url, timeout=30) as api:
        # ok only once the worker is alive: it wrote its record.
        _wait_for(lambda: _healthy(api), 90, "serve's worker never showed itself")
        job_id = _slow_job(api)

        # SIGTERM: the worker hands the job back and exits; its replacement takes the job.
        wait_mid_trial(api, job_id, epochs=EPOCHS)
        (first,) = _workers(process.pid)
        os.kill(first, signal.SIGTERM)
        _wait_for(lambda: not _exists(first), 60, "the stopped worker was never reaped")
        _wait_for(
            lambda: api.get(f"/api/v1/jobs/{job_id}").json()["attempt"] >= 2,
            90,
            "the job handed back on SIGTERM was never claimed again",
        )

        # kill -9 (as the OOM killer would): the job stays running under a dead worker
        # until its lease expires, then the replacement takes it over.
        wait_mid_trial(api, job_id, epochs=EPOCHS)
        (second,) = _workers(process.pid)
        assert second != first
        os.kill(second, signal.SIGKILL)
        _wait_for(lambda: not _exists(second), 30, "the killed worker was left a zombie")
        done = wait_for_job(api, job_id, timeout=180)
        assert done["status"] == "succeeded", done
        assert done["attempt"] >= 3

        assert _metric(api, "tuner_worker_restarts_total") == 2
        assert _metric(api, "tuner_worker_takeovers_total") >= 1
        assert _metric(api, "tuner_workers_alive") == 1
    log = (tmp_path / "serve.log").read_text()
    assert f"worker {first} exited with code 0" in log
    assert f"worker {second} killed by signal 9 (SIGKILL)" in log
    assert "taken over from a worker whose lease expired" in log


def test_health_is_degraded_while_no_worker_is_alive(settings: Settings, tmp_path: Path) -> None:
    fast = make_settings(settings.database_url, settings.data_dir, **FAST)
    with LiveServer(fast) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        health = api.get("/healthz")
        assert health.status_code == 200  # the API itself serves: degraded, not down
        assert health.json()["status"] == "degraded"
        assert "no worker is alive" in health.json()["reasons"][0]

        graceful = WorkerProcess(fast, tmp_path / "graceful.log")
        _wait_for(lambda: _healthy(api), 60, "the worker never showed itself")
        graceful.stop()  # a clean exit removes its record: degraded at once
        assert api.get("/healthz").json()["status"] == "degraded"

        killed = WorkerProcess(fast, tmp_path / "killed.log")
        _wait_for(lambda: _healthy(api), 60, "the worker never showed itself")
        assert _metric(api, "tuner_workers_alive") == 1
        killed.proc.send_signal(signal.SIGKILL)
        killed.proc.wait()
        killed.stop()
        # Nothing cleans up after kill -9: its record goes stale within a lease.
        _wait_for(lambda: not _healthy(api), fast.lease_s + 5, "health stayed ok")
        assert api.get("/healthz").json()["workers"] == 0
        assert _metric(api, "tuner_workers_alive") == 0


def test_a_worker_whose_job_was_taken_over_says_so(settings: Settings, tmp_path: Path) -> None:
    fast = make_settings(settings.database_url, settings.data_dir, **FAST)
    with LiveServer(fast) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        job_id = _slow_job(api)
        stalled = WorkerProcess(fast, tmp_path / "stalled.log")
        other: WorkerProcess | None = None
        frozen: list[int] = []
        try:
            wait_mid_trial(api, job_id, epochs=EPOCHS)
            # A machine that stalls (a frozen VM) past the lease: the worker and its search.
            frozen = [stalled.proc.pid, *search_processes(stalled.proc.pid)]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            other = WorkerProcess(fast, tmp_path / "other.log")
            _wait_for(
                lambda: api.get(f"/api/v1/jobs/{job_id}").json()["attempt"] >= 2,
                60,
                "nobody took the stalled worker's job over",
            )
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            # Its next heartbeat, or its search's next fenced write, finds the lease gone.
            _wait_for(
                lambda: "job lease lost" in (tmp_path / "stalled.log").read_text(),
                30,
                "the stalled worker never said it lost its lease",
            )
            # Counted in its record, which it rewrites every heartbeat.
            _wait_for(
                lambda: _metric(api, "tuner_worker_leases_lost_total") == 1,
                5,
                "the lost lease was not counted",
            )
            assert _metric(api, "tuner_worker_takeovers_total") == 1
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):  # it may have ended since
                    os.kill(pid, signal.SIGCONT)
            stalled.stop()
            if other is not None:
                other.stop()


def test_a_search_process_over_its_memory_cap_fails_the_job_out_of_memory(
    settings: Settings, tmp_path: Path
) -> None:
    # Below what TensorFlow's import alone takes, above a process that has not imported it.
    capped = make_settings(
        settings.database_url, settings.data_dir, search_rss_cap_mb=300, max_attempts=1
    )
    with LiveServer(capped) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        dataset = upload_ok(api, customers_frame(), "churned")
        job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 1})
        worker = WorkerProcess(capped, tmp_path / "worker.log")
        try:
            done = wait_for_job(api, job["id"], timeout=120)
        finally:
            worker.stop()
    assert done["status"] == "failed"
    assert "was killed: out of memory at about " in done["error"]
    assert "past its 315 MB cap, TUNER_SEARCH_RSS_CAP_MB" in done["error"]
    assert worker.proc.returncode == 0  # the worker itself is unharmed
