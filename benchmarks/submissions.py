"""(5) Submission throughput: POST /jobs, sustained, on SQLite.

A real API process (`tuner-service api`) on a migrated SQLite file, no worker (jobs
stay queued), 16 keep-alive clients posting a default spec back to back for 10 s after
a short warm-up; every answer must be a 202. Then the same app under
`uvicorn --workers 2` (two API processes on the same database), to show what one
Python process's CPU limits.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import service, tree_cpu_seconds, upload_csv
from benchmarks.loadgen import Results, json_body, run_clients
from benchmarks.report import Row

CLIENTS, DURATION_S, WARMUP_S = 16, 8.0, 2.0


def _run(api_processes: int) -> tuple[float, Results, float, int]:
    """(jobs/s, latencies, API CPU ms per submission, jobs queued)."""
    with (
        tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp,
        service(api_processes=api_processes) as (svc, client),
    ):
        dataset = upload_csv(client, write_csv(Path(tmp) / "train.csv"), TARGET)
        body = json_body({"dataset_id": dataset["id"], "tuner": {"algorithm": "random_search"}})

        def request(_client: int, _n: int) -> tuple[str, str, bytes]:
            return "POST", "/api/v1/jobs", body

        run_clients(svc.url, CLIENTS, WARMUP_S, request)
        assert svc.api is not None
        cpu_before = tree_cpu_seconds(svc.api.pid)
        result = run_clients(svc.url, CLIENTS, DURATION_S, request)
        cpu_ms = (tree_cpu_seconds(svc.api.pid) - cpu_before) * 1000 / len(result.latencies_ms)
        total = client.get("/api/v1/jobs", params={"limit": 1}).json()["total"]
    assert set(result.statuses) == {202}, result.statuses
    return result.rate, result, cpu_ms, total


def measure() -> list[Row]:
    rate, result, cpu_ms, total = _run(1)
    rate2, result2, cpu_ms2, _ = _run(2)
    return [
        Row(
            "5. submission throughput (SQLite)",
            f"POST /jobs, {CLIENTS} clients for {DURATION_S:.0f} s, `tuner-service api`",
            f"{rate:.0f} jobs/s (p50 {result.percentile(50):.0f} ms, "
            f"p99 {result.percentile(99):.0f} ms; {total} jobs queued)",
            ">= 200/s",
            rate >= 200,
            f"one API process: {cpu_ms:.1f} ms of CPU per submission, at most "
            f"{1000 / cpu_ms:.0f}/s on a whole core",
        ),
        Row(
            "",
            "the same app under `uvicorn --workers 2`",
            f"{rate2:.0f} jobs/s (p50 {result2.percentile(50):.0f} ms, "
            f"p99 {result2.percentile(99):.0f} ms)",
            ">= 200/s",
            rate2 >= 200,
            f"{cpu_ms2:.1f} ms of CPU per submission over both processes",
        ),
    ]


if __name__ == "__main__":
    for row in measure():
        print(row)
