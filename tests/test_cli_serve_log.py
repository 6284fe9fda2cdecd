"""What `tuner-service serve` (what `make run` starts) prints: no access line per request at
the default level (the dashboard polls every two seconds), the access lines back at DEBUG,
TensorFlow's C++ notices turned down for every process it starts, and Ctrl-C (SIGINT to
the whole foreground process group, as a terminal sends it) ends it without a traceback."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.logs import configure_logging
from tests.cli_support import COMMAND


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path: Path, level: str) -> tuple[str, int]:
    """Runs serve until it answers, polls the job list a few times, then Ctrl-C; returns
    what it printed and its exit status."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "TF_CPP"))},
        "TUNER_PORT": str(port),
        "TUNER_DATABASE_URL": f"sqlite:///{tmp_path / 'tuner.db'}",
        "TUNER_DATA_DIR": str(tmp_path / "data"),
        "TUNER_WORKERS": "1",
        "TUNER_PREWARM": "false",  # no TensorFlow import: this is about the service's lines
        "TUNER_LOG_LEVEL": level,
    }
    log = (tmp_path / f"serve-{level}.log").open("w+")
    # Its own process group: the SIGINT below reaches serve and its workers, as Ctrl-C does.
    proc = subprocess.Popen(
        [*COMMAND, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.2)
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs").status_code == 200
        time.sleep(1)  # the worker's start line
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log.seek(0)
    return log.read(), code


@pytest.mark.slow
def test_serve_logs_no_poll_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "info").mkdir()
    (tmp_path / "debug").mkdir()
    text, code = _serve(tmp_path / "info", "INFO")
    assert code == 0, text
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text
    # The startup log names where to go: the dashboard first.
    assert "dashboard at http://127.0.0.1:" in text
    assert "worker started" in text
    assert '"GET /api/v1/jobs HTTP/1.1" 200' not in text

    verbose, code = _serve(tmp_path / "debug", "DEBUG")
    assert code == 0, verbose
    assert verbose.count('"GET /api/v1/jobs HTTP/1.1" 200') == 3


def test_logging_turns_down_access_lines_and_tensorflow_notices(monkeypatch) -> None:
    # Set, then removed: the fixture then restores the caller's value (or its absence).
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
        # Set in this process's environment, which every search process started inherits.
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
        configure_logging("DEBUG")
        assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
        # An operator's own choice is kept.
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
        configure_logging("INFO")
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("uvicorn.access").setLevel(logging.NOTSET)


def test_tensorflow_imports_without_its_cpu_machine_notices() -> None:
    """What TensorFlow's C++ side prints on import before its logging starts (so no
    TF_CPP_MIN_LOG_LEVEL holds it back) is dropped; any other line still shows."""
    script = (
        "import os\n"
        "from tuner_jobs.search import native_noise\n"
        "with native_noise._without_notices():\n"
        "    os.write(2, b'a line of its own\\n')\n"
        "native_noise.import_tensorflow()\n"
        "import tensorflow as tf\n"
        "tf.constant(1.0)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=120, check=True
    )
    printed = done.stderr.decode()
    assert "a line of its own" in printed
    for notice in ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers"):
        assert notice not in printed, printed
