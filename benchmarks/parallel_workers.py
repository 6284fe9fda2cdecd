"""One search spread over two workers vs the same search on one worker (issue 5).

A fixed 8-trial RandomSearch (10 epochs, no early stopping, seed 42: the same eight
configurations on both sides) on the 2,000-row set, through the real service on
SQLite:

- one worker, `parallel_trials` 1: the whole search in one process, TensorFlow free
  to use every core;
- two workers on the same machine, `parallel_trials` 2: a chief serving KerasTuner's
  oracle and two tuner processes, each limited to one TensorFlow thread
  (TUNER_CHILD_THREADS=1) so the two share the cores instead of fighting over them.

The clock runs from POST /jobs to `succeeded`, with the workers already idle (their
spare search processes have imported TensorFlow).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import child_pids, service, submit, upload_csv, wait_finished
from benchmarks.report import Row

TRIALS, EPOCHS = 8, 10
SPARE_IMPORT_S = 10.0  # time for an idle worker's spare process to import TensorFlow


def job_spec(dataset_id: str, parallel_trials: int) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": TRIALS, "seed": 42},
        "training": {"epochs": EPOCHS},
        "callbacks": {"early_stopping": None},
        "parallel_trials": parallel_trials,
    }


def run(train: Path, workers: int) -> dict[str, Any]:
    threads = 1 if workers > 1 else 0
    with service() as (svc, client):
        dataset = upload_csv(client, train, TARGET)
        procs = [svc.start_worker(child_threads=threads) for _ in range(workers)]
        deadline = time.monotonic() + 60
        while not all(child_pids(p.pid) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(SPARE_IMPORT_S)
        started = time.monotonic()
        job = submit(client, job_spec(dataset["id"], parallel_trials=workers))
        done = wait_finished(client, [job["id"]], timeout=900)[job["id"]]
        wall = done["finished_monotonic"] - started
        items = client.get(f"/api/v1/jobs/{job['id']}/trials", params={"limit": 100}).json()
        ran_on = {t["worker"] for t in items["items"]}
    return {
        "wall_s": wall,
        "trials": len(items["items"]),
        "workers_used": len(ran_on),
        "best": done["best"]["score"] if done["best"] else None,
    }


def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="tuner-bench-par-") as tmp:
        train = write_csv(Path(tmp) / "train.csv")
        one = run(train, workers=1)
        two = run(train, workers=2)
    ratio = two["wall_s"] / one["wall_s"]
    return [
        Row(
            "5. parallel trials",
            f"{TRIALS}-trial search, 2 workers (parallel_trials 2) / 1 worker, wall time",
            f"{ratio:.2f} ({two['wall_s']:.1f} s / {one['wall_s']:.1f} s)",
            "<= 0.65",
            ratio <= 0.65,
            f"trials {two['trials']} on {two['workers_used']} workers vs {one['trials']} on 1; "
            f"best val_accuracy {two['best']:.3f} vs {one['best']:.3f}",
        )
    ]


if __name__ == "__main__":
    from benchmarks.report import table

    print(table(measure()))
