"""What can be checked of the Dockerfile and compose file without a Docker engine."""

from __future__ import annotations

import re
import shlex

import pytest

from app.cli import build_parser
from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def _stages() -> dict[str, str]:
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", DOCKERFILE, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_path_the_dockerfile_copies_exists() -> None:
    sources = [
        src
        for line in DOCKERFILE.splitlines()
        if line.startswith("COPY ")
        for src in shlex.split(line)[1:-1]
        if not src.startswith("--")
    ]
    assert sources, "the Dockerfile copies the project in"
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such path"


def test_api_image_has_no_tensorflow_and_worker_image_has_it() -> None:
    stages = _stages()
    assert {"base", "api", "worker"} <= stages.keys()
    assert "pip install ." in stages["api"]
    assert "[worker]" not in stages["api"]
    assert "[worker]" in stages["worker"]
    for stage in ("api", "worker"):
        assert "USER tuner" in stages[stage]
        assert "HEALTHCHECK" in stages[stage]


@pytest.mark.parametrize(
    "command",
    [
        *list(re.findall(r'CMD \["tuner-service", "(\w+)"\]', DOCKERFILE)),
        *list(re.findall(r'command: \["tuner-service", "(\w+)"\]', COMPOSE)),
    ],
)
def test_container_commands_are_real_subcommands(command: str) -> None:
    assert build_parser().parse_args([command]).command == command


def test_compose_has_the_four_services_a_serving_profile_and_a_healthchecked_database() -> None:
    services = re.findall(r"^  (\w+):\s*$", COMPOSE.split("\nvolumes:")[0], flags=re.MULTILINE)
    # And TensorFlow Serving, only under its profile: `docker compose up` leaves it out.
    assert services == ["db", "migrate", "api", "worker", "serving"]
    assert re.search(r'^  serving:\n    profiles: \["serving"\]', COMPOSE, flags=re.MULTILINE)
    assert "pg_isready" in COMPOSE
    assert "service_completed_successfully" in COMPOSE
    assert "postgresql+psycopg://" in COMPOSE


@pytest.mark.slow
def test_serve_stops_its_workers_on_sigterm(tmp_path) -> None:
    """`docker stop` of an all-in-one container sends SIGTERM to `serve`: its workers
    must go with it (uvicorn re-raises the signal after its own shutdown)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "TUNER_DATABASE_URL": f"sqlite:///{tmp_path / 'tuner.db'}",
        "TUNER_DATA_DIR": str(tmp_path / "data"),
        "TUNER_PORT": str(port),
        "TUNER_WORKERS": "1",
        "TUNER_PREWARM": "false",
    }
    env.pop("TUNER_API_KEYS", None)
    serve = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "serve never answered /healthz"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        children = Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text().split()
        workers = [
            int(pid) for pid in children if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(workers) == 1
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        # The worker is gone (reaped by serve, so no /proc entry is left behind).
        assert not Path(f"/proc/{workers[0]}").exists()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
