"""Failures that say what happened: a really full disk (a 2 MB tmpfs) is a 507 saying so (the
server's paths in its log, not in the answer) and degrades /healthz; a search process
SIGKILLed near its memory limit is reported as out of memory, at its peak RSS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.store.migrate import upgrade
from tests.conftest import LiveServer, make_settings
from tests.factories import assert_problem, csv_bytes, customers_frame, upload, upload_ok
from tuner_jobs.worker.outcomes import ChildExit, death

TMPFS_KB = 2048


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB file system: writes past it fail with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_KB}k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_kb: int) -> Path:
    """Take all but `leave_kb` of the disk's free space."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - leave_kb * 1024))
    return filler


def test_an_upload_onto_a_full_data_dir_disk_is_a_507_and_health_degrades(
    database_url: str, small_disk: Path
) -> None:
    data_dir = small_disk / "data"
    settings = make_settings(database_url, data_dir, min_free_disk_mb=0)
    big = csv_bytes(customers_frame(rows=40_000))  # ~1.8 MB, more than is left
    _fill(small_disk, leave_kb=256)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        assert api.get("/healthz").status_code == 200
        body = assert_problem(upload(api, big, target="churned"), 507, "no space left")
        assert str(small_disk) not in str(body)  # the log names the path, the client not
        health = api.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert "disk is full" in health.json()["reasons"][0]
        assert not list((data_dir / "datasets").glob(".upload-*"))  # nothing half-written
        # Space freed: the next write succeeds and health recovers.
        (small_disk / "filler").unlink()
        upload_ok(api, customers_frame(rows=200), "churned")
        assert api.get("/healthz").status_code == 200


def test_a_database_write_onto_a_full_disk_is_a_507_not_a_503(
    small_disk: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{small_disk / 'tuner.db'}"
    upgrade(url)
    settings = make_settings(url, tmp_path / "data", min_free_disk_mb=0)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        dataset = upload_ok(api, customers_frame(), "churned")
        _fill(small_disk, leave_kb=0)
        for _ in range(20):  # until the database's file and its WAL need a page it cannot get
            response = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]})
            if response.status_code != 202:
                break
        assert_problem(response, 507, "no space left")
        assert api.get("/healthz").json()["status"] == "degraded"


def test_health_is_degraded_when_the_data_dir_disk_is_nearly_full(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "data", min_free_disk_mb=1 << 40)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        health = api.get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert "TUNER_MIN_FREE_DISK_MB" in health.json()["reasons"][0]


# A worker under a 600 MB RLIMIT_AS whose child grows to ~350 MB and is then SIGKILLed (as the
# OOM killer would): the message the worker's rule writes from what it measured.
OOM_SCRIPT = textwrap.dedent(
    """
    import resource, signal, subprocess, sys, time
    from tuner_jobs.worker.memory import children_peak_rss, memory_limit_bytes, rss_high_water
    from tuner_jobs.worker.outcomes import ChildExit, death

    resource.setrlimit(resource.RLIMIT_AS, (600 << 20, resource.RLIM_INFINITY))
    before = children_peak_rss()
    child = subprocess.Popen([sys.executable, "-c",
        "import time; b = b'x' * (350 << 20); print('full', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    child.stdout.readline()
    peak = rss_high_water(child.pid)
    child.send_signal(signal.SIGKILL)
    child.wait()
    peak = max(peak, children_peak_rss()) if children_peak_rss() > before else peak
    print(death(ChildExit(None, child.returncode, peak, memory_limit_bytes())))
    """
)


def test_a_search_process_killed_near_its_memory_limit_says_out_of_memory() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", OOM_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    message = done.stdout.strip()
    assert message.startswith("was killed: out of memory at about "), message
    peak_mb = int(message.split("at about ")[1].split(" MB")[0])
    assert 350 <= peak_mb <= 500, message
    assert message.endswith("of a 629 MB limit"), message
    assert time.monotonic() - started < 60


OUT_OF_MEMORY = "was killed: out of memory"
POSSIBLY = "was killed by signal 9 (SIGKILL), possibly out of memory"


@pytest.mark.parametrize(
    ("ended", "said"),
    [
        (ChildExit(None, -signal.SIGKILL, 3_100_000_000, 4_000_000_000), OUT_OF_MEMORY),
        (ChildExit(None, -signal.SIGKILL, 100_000_000, 4_000_000_000), POSSIBLY),
        (ChildExit(None, -signal.SIGKILL, 3_900_000_000, 4_000_000_000, True), "by its worker"),
        (ChildExit(None, 1, 3_900_000_000, 4_000_000_000), "died (exit code 1)"),
        (ChildExit(None, -signal.SIGKILL, None, None), POSSIBLY),
        (ChildExit(None, -signal.SIGTERM, None, None), "killed by signal 15 (SIGTERM)"),
        # The container's OOM count rose while it lived: out of memory, whatever its share.
        (ChildExit(None, -signal.SIGKILL, 300_000_000, None, oom_killed=True), "at about 300 MB"),
        # Its worker's TUNER_SEARCH_RSS_CAP_MB cap killed it.
        (
            ChildExit(None, -signal.SIGKILL, 300_000_000, None, True, memory_cap_bytes=256 << 20),
            "out of memory at about 300 MB (past its 268 MB cap, TUNER_SEARCH_RSS_CAP_MB)",
        ),
    ],
)
def test_the_out_of_memory_rule(ended: ChildExit, said: str) -> None:
    assert said in death(ended)
    if said == OUT_OF_MEMORY:
        assert death(ended).endswith("at about 3.1 GB of a 4.0 GB limit")
