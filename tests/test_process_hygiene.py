"""Process hygiene: `serve`'s workers die with it even under kill -9, partial uploads left by a
crash are removed at start, and a worker leaves no zombie search processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine

from app.cli import remove_partial_uploads
from app.settings import Settings
from app.store.models import Job, JobStatus
from app.store.unit_of_work import write_session
from tests.conftest import ROOT, make_settings, settings_env, sqlite_only
from tests.factories import dataset_row


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def _cmdline(pid: int) -> bytes:
    # A child listed a moment ago may already be reaped: then it has no command line.
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def _wait_for(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@sqlite_only
def test_serve_killed_with_sigkill_takes_its_worker_along(settings: Settings) -> None:
    settings.datasets_dir.mkdir(parents=True)
    partial = settings.datasets_dir / ".upload-left-by-a-crash"
    partial.write_bytes(b"half an upload")
    env = settings_env(settings)
    env.update(TUNER_WORKERS="1", TUNER_PORT=str(_free_port()))
    serve = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: _children(serve.pid), 60), "serve started no worker"
        (worker,) = _children(serve.pid)
        assert not partial.exists()
        serve.send_signal(signal.SIGKILL)
        serve.wait()
        # The worker is told (SIGTERM) the moment its parent dies, and shuts down.
        assert _wait_for(lambda: _state(worker) in (None, "Z"), 60), "the worker outlived serve"
    finally:
        if serve.poll() is None:
            serve.kill()
        for pid in _children(serve.pid):
            os.kill(pid, signal.SIGKILL)


def test_api_start_removes_only_partial_uploads_nobody_touched_for_long(tmp_path: Path) -> None:
    old, fresh, dataset = (tmp_path / n for n in (".upload-old", ".upload-fresh", "abc.csv"))
    for path in (old, fresh, dataset):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    os.utime(dataset, (time.time() - 7200, time.time() - 7200))
    assert remove_partial_uploads(tmp_path, older_than_s=3600) == 1
    assert not old.exists()
    assert fresh.exists()
    assert dataset.exists()


@sqlite_only
def test_a_worker_reaps_its_search_processes(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # A job whose stored spec does not validate: its search process reports the failure and
    # exits (before importing TensorFlow), after the worker has read its report.
    with write_session(engine) as session:
        dataset = dataset_row()
        session.add(dataset)
        session.flush()
        job = Job(dataset_id=dataset.id, spec={"tuner": "?"}, search_space={}, trials_planned=1)
        session.add(job)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=ROOT,
        env=settings_env(make_settings(settings.database_url, settings.data_dir)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def finished() -> bool:
            with write_session(engine) as session:
                return session.get_one(Job, job.id).status == JobStatus.FAILED

        assert _wait_for(finished, 90)

        def search_processes() -> list[str | None]:
            # The resource tracker of multiprocessing lives as long as the worker: not ours.
            return [
                _state(pid)
                for pid in _children(worker.pid)
                if b"resource_tracker" not in _cmdline(pid)
            ]

        assert _wait_for(lambda: search_processes() == [], 15), search_processes()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
