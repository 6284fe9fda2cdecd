"""`make bench-default-job`: iris's default job as a new user gets it, timed from
`POST /jobs` to `succeeded` (issue 25: under a minute on two cores).

Iris (150 rows, 4 inputs, 3 classes, scikit-learn's copy) is uploaded as a CSV to the
service as `make run` starts it (`tuner-service serve`: its default workers, real HTTP,
the workers warm), and submitted with nothing but `dataset_id`, so every default applies:
the time budget derived from the table, the algorithm, the training length, the folds,
the ensemble. Per round: the wall time, the budget the job resolved and its seconds kept
for the end phase, the trials, the job's score beside its baselines', and its verdict.

    python -m benchmarks.default_job [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from benchmarks.speed import run_service

TARGET_S = 60.0


def iris_csv(directory: Path) -> Path:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.copy()
    frame["target"] = [bunch.target_names[i] for i in frame["target"]]
    path = directory / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def _round(csv: Path) -> dict[str, Any]:
    run = run_service(csv, "target", reuse=True, spec={})
    job = run["job"]
    derivation = job["spec"].get("derivation") or {}
    baselines = job.get("baselines") or {}
    ensemble = job.get("ensemble") or {}
    started = datetime.fromisoformat(job["started_at"])
    best = (job.get("best") or {}).get("trial_id")
    found = next((t for t in run["trials"] if t["trial_id"] == best), None)
    return {
        "wall_s": run["wall_s"],
        # When the search's best trial ended, from the job's start: what a shorter budget
        # would have kept of this search.
        "best_at_s": None
        if found is None
        else (datetime.fromisoformat(found["finished_at"]) - started).total_seconds(),
        "status": job["status"],
        "budget_s": job["spec"].get("max_runtime_s"),
        "end_phase_s": derivation.get("end_phase_s"),
        "trials": len(run["trials"]),
        # The job's model: its ensemble where used, else its best trial.
        "score": ensemble["score"]
        if ensemble.get("used")
        else (job.get("best") or {}).get("score"),
        "baselines": {
            name: round(b["score"], 4)
            for name, b in baselines.items()
            if isinstance(b, dict) and b.get("score") is not None
        },
        "verdict": job.get("verdict"),
        "folds": run["folds"],
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def rows(rounds: list[dict[str, Any]]) -> list[Row]:
    walls = [r["wall_s"] for r in rounds]
    wall = statistics.median(walls)
    first = rounds[0]
    out = [
        Row(
            "iris, 150 rows: the default job",
            "POST /jobs to its end, median (each round)",
            f"{wall:.1f} s ({', '.join(f'{w:.1f}' for w in walls)})",
            f"< {TARGET_S:.0f} s",
            met=wall < TARGET_S and all(r["status"] == "succeeded" for r in rounds),
            note=f"status {', '.join(r['status'] for r in rounds)}; budget "
            f"{first['budget_s']} s (auto), {first['end_phase_s']} s of it kept for the end "
            f"phase; {first['folds']} folds",
        )
    ]
    for index, r in enumerate(rounds, 1):
        score = "-" if r["score"] is None else f"{r['score']:.4f}"
        out.append(
            Row(
                "",
                f"round {index}: trials; best trial found at (from the job's start); the "
                "job's score (cross-validated) vs its baselines",
                f"{r['trials']} trials; {_seconds(r['best_at_s'])}; {score} vs {r['baselines']}",
                note=r["verdict"] or "no verdict: no baseline scored above the job's model",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks.__main__ import load, print_report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.default_job", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    started, load_before = time.monotonic(), load()
    with tempfile.TemporaryDirectory(prefix="tuner-default-job-") as tmp:
        csv = iris_csv(Path(tmp))
        measured = [_round(csv) for _ in range(args.rounds)]
    print_report(
        rows(measured), started=started, load_before=load_before, detail=f"rounds: {args.rounds}; "
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
