"""The client distribution (client/pyproject.toml) on its own: a fresh virtual environment
with only it and what it declares, pinned by requirements.lock, and none of the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The server and its dependencies; pandas too, an extra of the client (tuner-client[pandas]).
NOT_INSTALLED = ["app", "tuner_jobs", "fastapi", "sqlalchemy", "psycopg", "tensorflow", "pandas"]


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("TUNER_URL", None)
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a virtual environment and an install from the package index
def test_the_client_installs_and_runs_without_the_server(tmp_path: Path) -> None:
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    # Built with this environment's setuptools: no build dependency to fetch.
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-w", wheels, ROOT / "client", cwd=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("tuner_client-*.whl")

    assert _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    # Its declared dependencies come from its own metadata, at the lock's versions.
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install",
                     "-c", ROOT / "requirements.lock", wheel, cwd=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # cwd is tmp_path, not the checkout: nothing of the server is importable from there.
    probe = _run(python, "-c", (
        "import importlib.util as u, sys, tuner_client\n"
        "from tuner_client import Client\n"
        "print(tuner_client.__file__)\n"
        f"print([m for m in {NOT_INSTALLED!r} if u.find_spec(m)])"
    ), cwd=tmp_path)  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    location, present = probe.stdout.splitlines()
    assert location.startswith(str(venv)), location
    assert present == "[]"

    helped = _run(venv / "bin" / "tuner", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: tuner "), helped.stdout
    for command in ("submit", "jobs", "status", "trials", "download", "cancel"):
        assert command in helped.stdout

    # A real command, through httpx, to a port where nothing listens.
    refused = _run(venv / "bin" / "tuner", "jobs", "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "is it running?" in refused.stderr
    assert "Traceback" not in refused.stderr
