"""`make bench-queue`: a queue of small jobs on one worker, its search processes reused
(TUNER_REUSE_SEARCH_PROCESSES, the default) or one fresh process per job.

Each round: `make run`'s service (API, one worker with its defaults: TUNER_PREWARM on),
the worker warm (its spare has imported TensorFlow) before the clock starts, then JOBS
small jobs queued at once (RandomSearch, 2 trials x 2 epochs, 300 rows). The clock runs
from the first POST /jobs to the last job's `succeeded`; the CPU is the worker's and every
search process it started (the kernel's count of its reaped children, plus the live
ones). Rounds alternate the two settings, so a change in the machine's load falls on both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.data import TARGET, write_csv
from benchmarks.harness import child_pids, cpu_seconds, service, submit, upload_csv, wait_finished
from benchmarks.harness import wait_warm as wait_spare_warm
from benchmarks.report import Row

JOBS = 6
ROWS = 300


def _spec(dataset_id: str, seed: int) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": 2, "seed": seed},
        "training": {"epochs": 2, "cross_validation": None, "ensemble": None},
    }


def _worker_cpu(pid: int) -> float:
    """The worker's CPU and its reaped children's, plus its live ones'."""
    live = sum(cpu_seconds(child) for child in child_pids(pid))
    return cpu_seconds(pid, reaped=True) + live


def _round(csv: Path, *, reuse: bool) -> dict[str, float]:
    with service(reuse_search_processes=str(reuse).lower()) as (svc, client):
        dataset = upload_csv(client, csv, TARGET)
        worker = svc.start_worker()
        wait_spare_warm(svc)
        cpu_before = _worker_cpu(worker.pid)
        started = time.monotonic()
        ids = [submit(client, _spec(dataset["id"], seed))["id"] for seed in range(JOBS)]
        done = wait_finished(client, ids, timeout=900)
        wall = max(job["finished_monotonic"] for job in done.values()) - started
        return {"wall_s": wall, "cpu_s": _worker_cpu(worker.pid) - cpu_before}


def rows(rounds: dict[bool, list[dict[str, float]]]) -> list[Row]:
    def median(reuse: bool, key: str) -> float:
        return statistics.median(r[key] for r in rounds[reuse])

    def each(reuse: bool, key: str) -> str:
        return ", ".join(f"{r[key]:.1f}" for r in rounds[reuse])

    out = []
    for key, what in (("wall_s", "wall time, first POST to last succeeded"), ("cpu_s", "CPU")):
        on, off = median(True, key), median(False, key)
        out.append(
            Row(
                f"{JOBS} queued jobs, one worker" if key == "wall_s" else "",
                f"{what}, median: reused vs a fresh process per job",
                f"{on:.1f} s vs {off:.1f} s = {on / off:.2f}x",
                note=f"reused: {each(True, key)}; fresh: {each(False, key)}",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.__main__ import load, print_report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.job_queue", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    started, load_before = time.monotonic(), load()
    measured: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="tuner-bench-queue-") as tmp:
        csv = write_csv(Path(tmp) / "train.csv", rows=ROWS)
        for index in range(args.rounds):
            for reuse in (True, False) if index % 2 == 0 else (False, True):
                print(f"[bench-queue] round {index + 1}, reuse={reuse}", file=sys.stderr)
                measured[reuse].append(_round(csv, reuse=reuse))
    print_report(
        rows(measured), started=started, load_before=load_before, detail=f"rounds: {args.rounds}; "
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
