"""(6) Memory: the resident memory of search processes across a 50-trial search.

One RandomSearch (50 trials x 1 epoch on the 2,000-row set, one hidden layer) with
the default recycling: a search process hands the search to a fresh one after
TUNER_RECYCLE_TRIALS=25 trials (or above TUNER_RECYCLE_RSS_MB). Every 0.25 s the
resident memory (VmRSS) of the worker's busy search process is read from /proc,
alongside the job's finished trials. The first process shows how memory grows
without recycling (per trial, over its 25 trials); the search's last trial shows
where recycling keeps it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import _cpu_ticks, child_pids, rss_mb, service, submit, upload_csv
from benchmarks.report import Row

TRIALS = 50


def _spec(dataset_id: str) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": TRIALS, "seed": 42},
        "training": {"epochs": 1},
        "callbacks": {"early_stopping": None},
        # The smallest network of the family: memory growth per trial comes from
        # KerasTuner and TensorFlow, and a quick trial keeps 50 of them in budget.
        "search_space": {
            "num_layers": {"type": "fixed", "value": 1},
            "batch_size": {"type": "fixed", "value": 128},
        },
    }


def _busy_child(worker_pid: int, ticks: dict[int, int | None]) -> int | None:
    """The worker's search process that used CPU since the last look (not an idle spare)."""
    busy = None
    for pid in child_pids(worker_pid):
        now = _cpu_ticks(pid)
        if now is not None and ticks.get(pid) is not None and now > (ticks[pid] or 0):
            busy = pid
        ticks[pid] = now
    return busy


def _sample(timeout: float = 600) -> list[tuple[int, float, int]]:
    """(trials finished, RSS in MB, pid) every 0.25 s until the job succeeds."""
    samples: list[tuple[int, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp, service() as (svc, client):
        dataset = upload_csv(client, write_csv(Path(tmp) / "train.csv"), TARGET)
        worker = svc.start_worker()
        job_id = submit(client, _spec(dataset["id"]))["id"]
        ticks: dict[int, int | None] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.25)
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] != "running" and job["status"] != "queued":
                assert job["status"] == "succeeded", job.get("error")
                return samples
            pid = _busy_child(worker.pid, ticks)
            rss = rss_mb(pid) if pid is not None else None
            if rss is not None:
                samples.append((job["progress"]["trials_completed"], rss, pid))
    raise TimeoutError("the 50-trial search did not finish")


def measure() -> list[Row]:
    samples = _sample()
    pids = list(dict.fromkeys(pid for _, _, pid in samples))
    first = [(done, rss) for done, rss, pid in samples if pid == pids[0] and done >= 1]
    start_rss, first_end = first[0][1], first[-1]
    growth = (first_end[1] - start_rss) / max(1, first_end[0] - first[0][0])
    last_done = max(done for done, _, _ in samples)
    end_rss = [rss for done, rss, _ in samples if done == last_done][-1]
    peak = max(rss for _, rss, _ in samples)
    return [
        Row(
            "6. memory of a search process",
            f"{TRIALS} trials x 1 epoch: one process, no recycling yet",
            f"{start_rss:.0f} MB after trial 1, {first_end[1]:.0f} MB after trial {first_end[0]} "
            f"(+{growth:.1f} MB per trial)",
        ),
        Row(
            "",
            "the same search with recycling (TUNER_RECYCLE_TRIALS=25, the default)",
            f"{end_rss:.0f} MB at trial {last_done}, peak {peak:.0f} MB over {len(pids)} processes",
            "bounded",
            # No process grows past what the first one reached in its 25 trials.
            peak <= first_end[1] * 1.05,
            f"one process for all {TRIALS} trials would reach about "
            f"{start_rss + (TRIALS - 1) * growth:.0f} MB (extrapolated from the first)",
        ),
    ]


if __name__ == "__main__":
    for row in measure():
        print(row)
