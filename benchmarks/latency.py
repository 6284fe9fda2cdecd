"""(3) API latency while two searches train.

A real API process and two workers (defaults: search processes at TUNER_WORKER_NICE,
TensorFlow's default threads) each running a long RandomSearch on the 2,000-row set.
Once both are training, 32 clients on loopback, each with its own keep-alive
connection, alternate GET /jobs/{id} and GET /jobs/{id}/trials over the two jobs:
- back to back (each client sends its next request as soon as it has the answer):
  32 requests are always in flight, so this measures the API at saturation;
- paced: each client one request every 500 ms, i.e. a job and its trials once a
  second (the Python client's default poll; the dashboard polls every 2 s): 64
  requests/s in all, the clients starting at random points of the interval.
Then the searches are cancelled and the back-to-back run is repeated on the idle
service, for comparison.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import child_pids, service, submit, upload_csv
from benchmarks.loadgen import Results, run_clients
from benchmarks.report import Row

CLIENTS, SECONDS, PACE_S = 32, 8.0, 0.5
TARGET_P99_MS = 50.0


def _training(client: httpx.Client, job_ids: list[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [client.get(f"/api/v1/jobs/{j}").json() for j in job_ids]
        if all(j["status"] == "running" and j["progress"]["current_trial"] for j in jobs):
            return
        time.sleep(0.5)
    raise TimeoutError("the searches did not start training")


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _load(url: str, job_ids: list[str], pace: float | None, seconds: float = SECONDS) -> Results:
    paths = [p for j in job_ids for p in (f"/api/v1/jobs/{j}", f"/api/v1/jobs/{j}/trials")]

    def request(client: int, n: int) -> tuple[str, str, None]:
        return "GET", paths[(client + n) % len(paths)], None

    result = run_clients(url, CLIENTS, seconds, request, interval_s=pace)
    assert set(result.statuses) == {200}, result.statuses
    return result


def _figure(result: Results) -> str:
    return (
        f"p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms "
        f"({result.rate:.0f} req/s)"
    )


def measure() -> list[Row]:
    spec: dict[str, Any] = {
        "tuner": {"algorithm": "random_search", "max_trials": 200},
        "training": {"epochs": 5},
        "callbacks": {"early_stopping": None},
    }
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp, service() as (svc, client):
        dataset = upload_csv(client, write_csv(Path(tmp) / "train.csv"), TARGET)
        svc.start_worker()
        svc.start_worker()
        job_ids = [submit(client, {**spec, "dataset_id": dataset["id"]})["id"] for _ in range(2)]
        _training(client, job_ids)
        children = [pid for w in svc.workers for pid in child_pids(w.pid)]
        nice = sorted({_niceness(pid) for pid in children})
        assert svc.api is not None
        api_nice = _niceness(svc.api.pid)
        _load(svc.url, job_ids, None, 2.0)  # warm-up: connections, statement cache
        saturated = _load(svc.url, job_ids, None)
        paced = _load(svc.url, job_ids, PACE_S)
        for job_id in job_ids:
            client.post(f"/api/v1/jobs/{job_id}/cancel")
        # Cancelled at the end of the current epoch; then only idle spares are left.
        while any(client.get(f"/api/v1/jobs/{j}").json()["status"] != "cancelled" for j in job_ids):
            time.sleep(0.5)
        time.sleep(2)
        idle = _load(svc.url, job_ids, None)
    p99 = saturated.percentile(99)
    return [
        Row(
            "3. API latency, two searches training",
            f"{CLIENTS} clients back to back, GET /jobs/{{id}} and /trials",
            _figure(saturated),
            f"p99 < {TARGET_P99_MS:.0f} ms",
            p99 < TARGET_P99_MS,
            f"search processes at nice {','.join(map(str, nice))}, the API at {api_nice}",
        ),
        Row(
            "",
            f"{CLIENTS} clients, each one request per {PACE_S * 1000:.0f} ms",
            _figure(paced),
            f"p99 < {TARGET_P99_MS:.0f} ms",
            paced.percentile(99) < TARGET_P99_MS,
        ),
        Row("", f"{CLIENTS} clients back to back, nothing training", _figure(idle)),
    ]


if __name__ == "__main__":
    for row in measure():
        print(row)
