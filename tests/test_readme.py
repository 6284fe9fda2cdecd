"""The README's first search, run as written (its curl commands, in a shell) against a live
server with a real worker: what a new user types first must work."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import ROOT, LiveServer, sqlite_only
from tests.factories import Stalled

pytestmark = [sqlite_only, pytest.mark.slow]

README = ROOT / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"


def _first_search_commands() -> list[str]:
    """The README's "A first search" block: one command per entry (continuations joined)."""
    section = README.read_text().split("## A first search", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README lost its first-search commands"
    text = block.group(1).replace("\\\n", " ")
    lines = [line.split("  #")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _run(command: str, tmp_path: Path) -> str:
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    return done.stdout


def test_the_readme_first_search_works_as_written(
    settings: Settings, start_worker, tmp_path: Path
) -> None:
    commands = _first_search_commands()
    assert [c.split()[0] for c in commands] == ["curl"] * len(commands)
    upload, submit, *reads = commands
    with LiveServer(settings) as live:
        here = lambda c: c.replace(DOCUMENTED_URL, live.url)  # noqa: E731
        dataset = json.loads(_run(here(upload), tmp_path))
        assert dataset["rows"] == 240
        assert dataset["task"] == "classification"
        assert dataset["classes"] == ["no", "yes"]
        job = json.loads(_run(here(submit).replace("3f…", dataset["id"]), tmp_path))
        assert job["status"] == "queued"

        start_worker()
        stalled = Stalled(240)
        # Until the first trial has completed and its model is saved (the search goes on).
        while httpx.get(f"{live.url}/api/v1/jobs/{job['id']}/model").status_code != 200:
            progress = httpx.get(f"{live.url}/api/v1/jobs/{job['id']}").json()
            assert progress["status"] in ("queued", "running"), progress
            assert not stalled(progress), f"no progress in 240 s: {progress}"
            time.sleep(0.5)
        for command in reads:
            command = here(command).replace("9a…", job["id"])
            # `-o best.keras` writes into the test's directory, not the checkout.
            command = command.replace(
                "-o best.keras", f"-o {shlex.quote(str(tmp_path))}/best.keras"
            )
            out = _run(f"curl --fail-with-body -sS {command.removeprefix('curl ')}", tmp_path)
            if "-o " not in command:
                assert json.loads(out)
        assert (tmp_path / "best.keras").stat().st_size > 10_000
        httpx.post(f"{live.url}/api/v1/jobs/{job['id']}/cancel")
