"""What the CLI tests share: the installed commands, run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 16},
    "batch_size": {"type": "fixed", "value": 32},
}
BIN = Path(sys.executable).parent
# The installed console scripts, as a user runs them (python -m where there are none).
SCRIPT = BIN / "tuner-service"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "app.cli"]
CLIENT_SCRIPT = BIN / "tuner"
CLIENT_COMMAND = (
    [str(CLIENT_SCRIPT)] if CLIENT_SCRIPT.exists() else [sys.executable, "-m", "tuner_client"]
)


def run_command(
    command: list[str], *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # The caller's TUNER_URL / TUNER_API_KEY must not leak in: each test says what it means.
    base = {k: v for k, v in os.environ.items() if k not in ("TUNER_URL", "TUNER_API_KEY")}
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_command(COMMAND, *args, cwd=cwd, env=env)
