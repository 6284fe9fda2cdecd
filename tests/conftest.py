"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when configured),
a live API over real HTTP, and real worker processes."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, make_url

from app.main import create_app
from app.settings import Settings
from app.store.db import make_engine, scratch_database
from app.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("TUNER_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("TUNER_TEST_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"]
# For tests of training behaviour that no backend changes (callbacks, models, curves):
# they run on SQLite only, which keeps the suite within a few minutes.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _require_postgres() -> str:
    if not POSTGRES_ADMIN_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("TUNER_TEST_REQUIRE_POSTGRES=1 but TUNER_TEST_POSTGRES_URL is unset")
        pytest.skip(
            "PostgreSQL not configured: set TUNER_TEST_POSTGRES_URL, or install its server"
            " binaries (/usr/lib/postgresql/*/bin) and `make test` starts one"
        )
    return POSTGRES_ADMIN_URL


# Each test's database is a copy of one migrated per test process: a copy costs a few
# milliseconds, the migrations tens (tests/test_migrations.py runs them on empty ones).
@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "tuner.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    """The name of a migrated PostgreSQL database nobody stays connected to (a template)."""
    with scratch_database(_require_postgres(), "tuner_migrated") as url:
        upgrade(url)
        yield make_url(url).database or ""


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database on each backend."""
    if request.param == "sqlite":
        yield _sqlite_copy(request.getfixturevalue("migrated_sqlite"), tmp_path / "tuner.db")
    else:
        template = request.getfixturevalue("migrated_postgres")
        with scratch_database(_require_postgres(), "tuner_test", template=template) as url:
            yield url


def _sqlite_copy(template: Path, path: Path) -> str:
    # SQLite's own backup, not a file copy: the template's WAL, if any, comes with it.
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(path)) as copy:
        source.backup(copy)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(migrated_sqlite: Path, tmp_path: Path) -> str:
    return _sqlite_copy(migrated_sqlite, tmp_path / "tuner.db")


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "heartbeat_s": 0.5,
        "lease_s": 15.0,
        "poll_s": 0.2,
        # Two test processes share two cores: one TensorFlow thread per search process
        # keeps them from oversubscribing the machine.
        "child_threads": 1,
        # A spare process made after a test's last job is only thrown away at teardown
        # (seconds of TensorFlow import each); tests/test_prewarm.py turns it back on.
        "prewarm": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


class LiveServer:
    """The real app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.app = create_app(settings)
        # No lifespan: its gc.freeze() is for a long-lived process. What its shutdown does is
        # done in __exit__ instead (each test's prediction process would otherwise live on,
        # TensorFlow loaded, until the test process ends).
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.app.state.predictor.close()
        self.app.state.engine.dispose()


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    """An HTTP client talking to the live API over loopback."""
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"TUNER_{key.upper()}"] = str(value)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class WorkerProcess:
    """`tuner-service worker` as a real OS process."""

    def __init__(self, settings: Settings, log_path: Path, *args: str) -> None:
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", *args],
            cwd=ROOT,
            env=settings_env(settings),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[object]:
    """Start worker processes on the test's database; all are stopped at teardown."""
    workers: list[WorkerProcess] = []

    def _start(*args: str, settings_override: Settings | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            settings_override or settings, tmp_path / f"worker-{len(workers)}.log", *args
        )
        workers.append(worker)
        return worker

    yield _start
    for worker in workers:
        worker.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run searches first (each keeps its file's order). The two test
    processes then end the suite on quick tests, together, instead of one finishing a
    twenty-second search alone while the other's core idles."""
    items.sort(
        key=lambda item: (
            not (
                item.get_closest_marker("slow")
                or "start_worker" in getattr(item, "fixturenames", ())
            )
        )
    )
