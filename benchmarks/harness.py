"""The real service as separate OS processes: `tuner-service api` and `tuner-service worker`.

Nothing is mocked or run in-process: the API is uvicorn in its own process (so the
benchmark's clients never share its interpreter), workers are real supervisors that
spawn real search children, and the database is a file (SQLite) or a scratch
PostgreSQL database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
FINISHED = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A migrated database, a data directory, an API process and any number of workers."""

    def __init__(self, workdir: Path, *, database_url: str | None = None, **env: Any) -> None:
        self.workdir = workdir
        self.database_url = database_url or f"sqlite:///{workdir / 'tuner.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TUNER_DATABASE_URL": self.database_url,
            "TUNER_DATA_DIR": str(workdir / "data"),
            "TUNER_PORT": str(self.port),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **{f"TUNER_{k.upper()}": str(v) for k, v in env.items()},
        }
        self.env.pop("TUNER_API_KEYS", None)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(
        self, name: str, *args: str, module: str | None = "app.cli", **env: Any
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}-{len(self.procs)}.log").open("ab")
        command = [sys.executable, *(["-m", module] if module else []), *args]
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, **{f"TUNER_{k.upper()}": str(v) for k, v in env.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def start_api(self, processes: int = 1) -> httpx.Client:
        """`tuner-service api`; with processes > 1 the same app under `uvicorn --workers`."""
        upgrade(self.database_url)
        if processes == 1:
            self.api = self._spawn("api", "api")
        else:
            self.api = self._spawn(
                "api",
                "-m",
                "uvicorn",
                "app.main:app",
                "--port",
                str(self.port),
                "--workers",
                str(processes),
                "--log-level",
                "warning",
                module=None,
            )
        client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    return client
            except httpx.TransportError:
                pass
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {self.workdir}/api-*.log")
            time.sleep(0.1)

    def start_worker(self, **env: Any) -> subprocess.Popen[bytes]:
        worker = self._spawn("worker", "worker", **env)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def service(
    *, database_url: str | None = None, api_processes: int = 1, **env: Any
) -> Iterator[tuple[Service, httpx.Client]]:
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp:
        svc = Service(Path(tmp), database_url=database_url, **env)
        try:
            client = svc.start_api(api_processes)
            try:
                yield svc, client
            finally:
                client.close()
        finally:
            svc.stop()


def upload_csv(client: httpx.Client, path: Path, target: str) -> dict[str, Any]:
    with path.open("rb") as f:
        response = client.post(
            "/api/v1/datasets", files={"file": (path.name, f, "text/csv")}, data={"target": target}
        )
    response.raise_for_status()
    return response.json()


def submit(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json=spec)
    response.raise_for_status()
    return response.json()


def wait_finished(
    client: httpx.Client, job_ids: list[str], *, timeout: float = 600, poll_s: float = 0.1
) -> dict[str, dict[str, Any]]:
    """Poll until every job is finished; returns each job and the monotonic time it finished."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(job_ids):
        for job_id in job_ids:
            if job_id in done:
                continue
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] in FINISHED:
                job["finished_monotonic"] = time.monotonic()
                done[job_id] = job
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still running after {timeout:.0f} s: {job_ids}")
        time.sleep(poll_s)
    for job in done.values():
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('error')}")
    return done


def child_pids(parent: int) -> list[int]:
    """Direct children of `parent` that are search processes (multiprocessing spawn)."""
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return []
    pids = []
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(pid)
    return pids


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A fresh PostgreSQL database from TUNER_TEST_POSTGRES_URL (an admin URL), dropped
    afterwards; None when it is not set (`. /tmp/pgenv` or .ci/run sets it)."""
    admin_url = os.environ.get("TUNER_TEST_POSTGRES_URL")
    if not admin_url:
        yield None
        return
    from app.store.db import scratch_database

    with scratch_database(admin_url, "tuner_bench") as url:
        yield url


def _cpu_ticks(pid: int, *, reaped: bool = False) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime + stime; with `reaped`, + cutime + cstime (its children it has waited for).
    return sum(int(f) for f in fields[11 : 15 if reaped else 13])


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU time a process has used so far; with `reaped`, that of the
    children it has reaped too."""
    ticks = _cpu_ticks(pid, reaped=reaped)
    if ticks is None:
        raise ProcessLookupError(pid)
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its direct children (uvicorn --workers forks them)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    total = cpu_seconds(pid)
    for child in map(int, children):
        ticks = _cpu_ticks(child)
        total += (ticks or 0) / os.sysconf("SC_CLK_TCK")
    return total


def wait_warm(svc: Service, *, timeout: float = 120) -> None:
    """Until every worker's spare search process has imported TensorFlow and sits idle
    (its CPU time stops moving): an idle worker of the service is warm, so a job's clock
    should not start while the import is still running."""
    deadline = time.monotonic() + timeout
    last: dict[int, int | None] = {}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        spares = [pid for worker in svc.workers for pid in child_pids(worker.pid)]
        ticks = {pid: _cpu_ticks(pid) for pid in spares}
        settled = len(spares) >= len(svc.workers) and all(
            t is not None and t > 100 and last.get(pid) == t for pid, t in ticks.items()
        )
        if settled:
            return
        last = ticks
    raise TimeoutError("the workers' spare search processes did not settle")
