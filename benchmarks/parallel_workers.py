"""One search spread over two workers vs the same search on one worker (issue 5).

A fixed 8-trial RandomSearch (10 epochs, no early stopping, seed 42: the same eight
configurations on both sides) on the 2,000-row set, through the real service on
SQLite:

- one worker, `parallel_trials` 1: the whole search in one process, TensorFlow free
  to use every core;
- two workers on the same machine, `parallel_trials` 2: a chief serving KerasTuner's
  oracle and running tuner0, and a tuner1 process on the other worker, each limited
  to one TensorFlow thread (TUNER_CHILD_THREADS=1) so the two share the cores instead
  of fighting over them.

The clock runs from POST /jobs to `succeeded`, with the workers already idle (their
spare search processes have imported TensorFlow). Five interleaved rounds; the
figure is the ratio of the two sides' medians.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import service, submit, upload_csv, wait_finished, wait_warm
from benchmarks.report import Row

TRIALS, EPOCHS = 8, 10
ROUNDS = 5


def job_spec(
    dataset_id: str, parallel_trials: int, *, trials: int = TRIALS, epochs: int = EPOCHS
) -> dict[str, Any]:
    """A seeded RandomSearch without early stopping: the same configurations, whatever
    the number of workers."""
    return {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": trials, "seed": 42},
        "training": {"epochs": epochs},
        "callbacks": {"early_stopping": None},
        "parallel_trials": parallel_trials,
    }


def run(train: Path, workers: int) -> dict[str, Any]:
    threads = 1 if workers > 1 else 0
    with service() as (svc, client):
        dataset = upload_csv(client, train, TARGET)
        for _ in range(workers):
            svc.start_worker(child_threads=threads)
        wait_warm(svc)  # every idle worker's spare process has imported TensorFlow
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
    ones, twos = [], []
    with tempfile.TemporaryDirectory(prefix="tuner-bench-par-") as tmp:
        train = write_csv(Path(tmp) / "train.csv")
        # Interleaved rounds: a shared machine's load drifts, and it drifts alike for
        # both sides of a round. The figure is the ratio of the medians.
        for _ in range(ROUNDS):
            ones.append(run(train, workers=1))
            twos.append(run(train, workers=2))
    one = statistics.median(r["wall_s"] for r in ones)
    two = statistics.median(r["wall_s"] for r in twos)
    ratio = two / one
    rounds = ", ".join(
        f"{b['wall_s']:.1f}/{a['wall_s']:.1f}" for a, b in zip(ones, twos, strict=True)
    )
    return [
        Row(
            "5. parallel trials",
            f"{TRIALS}-trial search, 2 workers (parallel_trials 2) / 1 worker, wall time, "
            f"median of {ROUNDS} rounds",
            f"{ratio:.2f} ({two:.1f} s / {one:.1f} s)",
            "<= 0.65",
            ratio <= 0.65,
            f"rounds (2 workers / 1, s): {rounds}; every 2-worker run used "
            f"{min(r['workers_used'] for r in twos)}+ workers for its "
            f"{min(r['trials'] for r in twos)} trials",
        )
    ]


if __name__ == "__main__":
    from benchmarks.report import table

    print(table(measure()))
