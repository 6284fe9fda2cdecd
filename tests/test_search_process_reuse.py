"""A search process whose job succeeded runs its worker's next job: TensorFlow's import is
paid once for a queue of jobs, within the recycle thresholds (TUNER_REUSE_SEARCH_PROCESSES)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, sqlite_only
from tests.factories import customers_frame, submit, upload_ok, wait_for_job

pytestmark = pytest.mark.slow


def _search_pids(log: str, job_id: str) -> list[str]:
    """The processes a job's search ran in, in order: a parallel_trials "auto" job's chief
    is its search process, and says which job it serves."""
    return [
        re.search(r"\[(\d+)\]", line).group(1)
        for line in log.splitlines()
        if "chief serving the oracle" in line and job_id in line
    ]


def _run_queue(
    api: httpx.Client, start_worker, settings, jobs: int, trials: int = 1, **overrides
) -> list[str]:
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    quick = {
        "tuner": {"algorithm": "random_search", "max_trials": trials},
        "training": {"epochs": 1},
    }
    ids = [submit(api, dataset["id"], **quick)["id"] for _ in range(jobs)]
    start_worker(
        settings_override=make_settings(settings.database_url, settings.data_dir, **overrides)
    )
    for job_id in ids:
        assert wait_for_job(api, job_id, timeout=180)["status"] == "succeeded"
    return ids


@sqlite_only  # process management; no backend changes it
def test_a_queue_of_jobs_runs_in_one_search_process_until_its_recycle_threshold(
    api: httpx.Client, start_worker, settings, tmp_path: Path
) -> None:
    # Two trials per job, three per process: the second job starts in the first one's
    # process, and its first trial uses the process up (the threshold counts trials over
    # every job it ran), so its second runs in a fresh one.
    first, second = _run_queue(api, start_worker, settings, 2, trials=2, recycle_trials=3)
    log = (tmp_path / "worker-0.log").read_text()
    [first_pid] = _search_pids(log, first)
    second_pids = _search_pids(log, second)
    assert second_pids[0] == first_pid, "the second job did not run in the first one's process"
    assert log.count("search process kept for the next job") >= 1, log
    [recycled] = [line for line in log.splitlines() if "recycling the search process" in line]
    assert second in recycled
    assert "recycle after 3 trial(s)" in recycled, recycled
    # The search went on in a fresh process, as any recycled search does.
    assert len(second_pids) == 2, second_pids
    assert second_pids[1] != first_pid


@sqlite_only
def test_without_reuse_each_job_gets_a_fresh_search_process(
    api: httpx.Client, start_worker, settings, tmp_path: Path
) -> None:
    first, second = _run_queue(api, start_worker, settings, 2, reuse_search_processes=False)
    log = (tmp_path / "worker-0.log").read_text()
    assert _search_pids(log, first) != _search_pids(log, second)
    assert "search process kept for the next job" not in log
