"""(2) Parallel trials on one machine: two trials at once vs one at a time.

The same RandomSearch job (8 trials x 4 epochs on the 2,000-row set) twice:
- one at a time: `parallel_trials: 1`, one worker, TensorFlow's default threads;
- two at once: `parallel_trials: 2` (the service's KerasTuner chief/worker mode), two
  workers, each search process limited to one TensorFlow thread (TUNER_CHILD_THREADS=1).
Workers are started and warm (their spare search process has imported TensorFlow)
before the clock starts; the clock runs from POST /jobs to `succeeded`. Throughput is
trials per second of wall time.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import service, submit, upload_csv, wait_finished, wait_warm
from benchmarks.parallel_workers import job_spec
from benchmarks.report import Row

TRIALS, EPOCHS = 8, 4


def _steady_rate(trials: list[dict[str, Any]]) -> float:
    """Trials per second while every tuner is busy: from the moment the last tuner
    started its first trial to the last finish, counting the trials that finished in
    that window (a parallel job's second tuner process starts some seconds late)."""
    first_start: dict[str | None, datetime] = {}
    for trial in trials:
        started = datetime.fromisoformat(trial["started_at"])
        worker = trial.get("worker")
        first_start[worker] = min(first_start.get(worker, started), started)
    begin = max(first_start.values())
    finished = [datetime.fromisoformat(t["finished_at"]) for t in trials]
    end = max(finished)
    done = sum(1 for f in finished if f > begin)
    return done / (end - begin).total_seconds()


def _run(csv: Path, *, parallel: int, threads: int) -> tuple[float, float]:
    """(wall time of the job, steady-state trials per second)."""
    with service(child_threads=threads) as (svc, client):
        dataset = upload_csv(client, csv, TARGET)
        for _ in range(parallel):
            svc.start_worker()
        wait_warm(svc)
        started = time.monotonic()
        job = submit(client, job_spec(dataset["id"], parallel, trials=TRIALS, epochs=EPOCHS))
        done = wait_finished(client, [job["id"]])[job["id"]]
        wall = done["finished_monotonic"] - started
        trials = client.get(f"/api/v1/jobs/{job['id']}/trials", params={"limit": 100}).json()
        assert trials["total"] == TRIALS, trials["total"]
        return wall, _steady_rate(trials["items"])


def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp:
        csv = write_csv(Path(tmp) / "train.csv")
        one_wall, one_rate = _run(csv, parallel=1, threads=0)
        two_wall, two_rate = _run(csv, parallel=2, threads=1)
    return [
        Row(
            "2. parallel trials, one machine",
            f"trials/min while training, {TRIALS} trials x {EPOCHS} epochs: 2 at once "
            "(1 thread each) vs 1 at a time",
            f"{two_rate * 60:.1f} vs {one_rate * 60:.1f} = {two_rate / one_rate:.2f}x",
        ),
        Row(
            "",
            "whole job, POST to succeeded",
            f"{two_wall:.1f} s vs {one_wall:.1f} s = {one_wall / two_wall:.2f}x throughput",
            "",
            None,
            "the chief runs tuner0 from the start; tuner1 joins once the chief has opened "
            "its slot (both warm)",
        ),
    ]


if __name__ == "__main__":
    for row in measure():
        print(row)
