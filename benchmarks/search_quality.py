"""`make bench-search`: is the service's model any good? Held-out scores against Optuna
and two scikit-learn baselines, on four tables, over several seeds.

For each table (benchmarks/search_tables.py) and seed, on the same held-out rows:

- the service's default job, through the real service (`tuner-service api` and as many
  `tuner-service worker`s as `make run` starts, one per core unless `--workers`, each
  search process with `make run`'s TensorFlow threads; real HTTP, SQLite): the table
  uploaded, a job submitted with only `dataset_id`, `training.test_split`, `tuner.seed`
  and `max_runtime_s` (the budget), so `parallel_trials: "auto"` lets every idle worker
  run its trials; with a time budget and no algorithm the service picks TPE
  (app.search.spec's resolve_algorithm); its figure is the job's own `best.test_score`;
- the same job with `tuner.algorithm: "hyperband"`, for information: the default of a
  job without a time budget (and of every job before the budget chose TPE);
- a plain Optuna search (benchmarks/optuna_script.py: TPE + Hyperband pruning, the same
  networks, space and rows, `timeout=budget`), in its own process at the search
  processes' niceness, its best model scored on the held-out rows;
- the two baselines of tuner_jobs/search/baselines.py (logistic regression, gradient
  boosting), fitted on the service's training rows and scored on the held-out rows.

The held-out rows are the service's: `split_dataset` with the job's seed and test
fraction, as the search runner's `prepare` calls it. The run checks that they are: the
job's `best.test_metrics.rows`, the digest of the Optuna side's test rows, and the job's
own baselines' test scores against the ones computed here.

The service's workers are idle and warm before each search starts (their spare search
processes have imported TensorFlow, as in a running service), and nothing else runs
while a search does. Time: with the default 40 s budget, 4 tables x 3 seeds x 3 searches is
24 minutes of searching, plus the waits for the worker's next spare process to import
TensorFlow (5-10 s after each job), the Optuna process's imports (once per table) and
the scoring, about 7 s per service job in all: about 28 minutes on two idle cores
(measured with a 15 s budget); `--budget 35` brings it to about 25.

    python -m benchmarks.search_quality [--tables wine,digits] [--seeds 3] [--budget 40]
        [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.search.datasets import class_label, load_training_frame, profile_frame
from app.search.folds import resolve_folds
from app.search.search_space import effective_search_space
from app.search.table_readers import read_table
from app.settings import Settings, serve_layout
from benchmarks.harness import FINISHED, ROOT, Service, service, upload_csv, wait_warm
from benchmarks.search_quality_report import SERVICE_JOBS, report
from benchmarks.search_tables import TABLES, TARGET, rows_digest, write_table
from tuner_jobs.search.baselines import score_baselines
from tuner_jobs.search.split import Split, split_dataset

SIDES = (*SERVICE_JOBS, "optuna", "baselines")
VALIDATION_SPLIT = 0.2  # the service's default training.validation_split
OBJECTIVE = "val_accuracy"  # the service's default objective for classification
MAX_UNPACKED = 8 * (Settings().max_upload_mb << 20)  # as the search runner reads a table


STARTED = time.monotonic()


def log(message: str) -> None:
    elapsed = time.monotonic() - STARTED
    print(f"[bench-search {elapsed:5.0f} s] {message}", file=sys.stderr, flush=True)


class Table:
    """A table as the service sees it: its upload, profile, rows and class indices."""

    def __init__(self, name: str, path: Path, dataset: dict[str, Any]) -> None:
        self.name, self.path, self.dataset = name, path, dataset
        raw = read_table(path, "csv", max_unpacked_bytes=MAX_UNPACKED)
        self.profile = profile_frame(raw, TARGET, None)
        self.frame, y = load_training_frame(path, "csv", TARGET, max_unpacked_bytes=MAX_UNPACKED)
        # The class indices of tuner_jobs.search.data.class_indices (without its Keras).
        index = {label: i for i, label in enumerate(self.profile.classes or [])}
        self.labels = np.array([index[class_label(v)] for v in y.tolist()], dtype="int64")
        self.space = effective_search_space(None, features=self.profile.features)
        if dataset["features"] != self.profile.features or dataset["classes"] != (
            self.profile.classes
        ):
            raise RuntimeError(f"{name}: the service profiled the table differently")

    def folds(self, test_split: float) -> int | None:
        """The folds the service's default job resolves for this table ("auto")."""
        counts = np.bincount(self.labels)
        return resolve_folds(
            "auto",
            test_split=test_split,
            classification=self.profile.task == "classification",
            rows=len(self.frame),
            smallest_class=lambda: int(counts[counts > 0].min()),
        )

    def split(self, seed: int, test_split: float, folds: int | None = None) -> Split:
        """The rows the service's search of this seed trains, validates and is tested on;
        `folds`: a cross-validated job's (every row but the test rows then trains)."""
        return split_dataset(
            len(self.frame),
            validation_split=VALIDATION_SPLIT,
            test_split=test_split,
            seed=seed,
            labels=self.labels,
            folds=folds,
        )


def baselines(table: Table, split: Split, seed: int) -> dict[str, float]:
    scores = score_baselines(
        columns=table.profile.columns,
        frame=table.frame,
        y=table.labels,
        task=table.profile.task,
        classes=table.profile.classes,
        split=split,
        objective=OBJECTIVE,
        seed=seed,  # the job's tuner.rng_seed, as the worker scores them
    )
    return {name: result["test_score"] for name, result in scores.items()}


def _seconds(job: dict[str, Any]) -> float | None:
    if not (job.get("started_at") and job.get("finished_at")):
        return None
    started, finished = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def predict_accuracy(client: httpx.Client, job_id: str, table: Table, rows: np.ndarray) -> float:
    """The job's model's accuracy on `rows`, through POST /jobs/{id}/predict."""
    raw = table.frame.iloc[rows]
    records = raw.astype(object).where(raw.notna(), None).to_dict("records")
    response = client.post(f"/api/v1/jobs/{job_id}/predict", json={"rows": records}, timeout=300)
    response.raise_for_status()
    classes = table.profile.classes or []
    truth = [classes[i] for i in table.labels[rows]]
    labels = [class_label(p["label"]) for p in response.json()["predictions"]]
    return sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)


def run_job(
    client: httpx.Client,
    table: Table,
    split: Split,
    seed: int,
    algorithm: str | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One job through the API, default but for the algorithm; its held-out score."""
    spec: dict[str, Any] = {
        "dataset_id": table.dataset["id"],
        "training": {"test_split": args.test_split},
        "tuner": {"seed": seed} | ({"algorithm": algorithm} if algorithm else {}),
        "max_runtime_s": args.budget,
    }
    response = client.post("/api/v1/jobs", json=spec)
    if response.status_code == 422 and algorithm and "algorithm" in response.text:
        return {"unavailable": f"not available: {response.json().get('detail', '')}"}
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + args.budget + 600
    while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] not in FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {args.budget + 600} s")
        time.sleep(0.5)
    best = job.get("best") or {}
    metrics = best.get("test_metrics") or {}
    result = {
        "job_id": job_id,
        "status": job["status"],
        "stop_reason": job.get("stop_reason"),
        "error": job.get("error"),
        "score": best.get("score"),
        "test_score": best.get("test_score"),
        "test_rows": metrics.get("rows"),
        "trials_completed": job["progress"]["trials_completed"],
        "wall_s": _seconds(job),
        "cross_validation": job["spec"].get("training", {}).get("cross_validation"),
        "space_is_default": job["search_space"] == table.space,
        "baselines": {
            name: (value or {}).get("test_score")
            for name, value in (job.get("baselines") or {}).items()
            if isinstance(value, dict)
        },
    }
    if job["status"] != "succeeded":
        log(f"  job {job_id} {job['status']}: {job.get('error')}")
    elif result["test_score"] is None:
        # The job should carry it (training.test_split); where it does not, its model is
        # scored on the same rows through /predict, and the checks say so.
        result["test_score"] = predict_accuracy(client, job_id, table, split.test)
        result["test_score_via_predict"] = True
    return result


def run_optuna(table: Table, seeds: list[int], args: argparse.Namespace) -> dict[int, Any]:
    """benchmarks/optuna_script.py for every seed in one process (one TensorFlow import)."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.optuna_script",
        str(table.path),
        "--target",
        TARGET,
        "--seeds",
        ",".join(map(str, seeds)),
        "--budget",
        str(args.budget),
        "--validation-split",
        str(VALIDATION_SPLIT),
        "--test-split",
        str(args.test_split),
    ]
    nice = Settings().worker_nice  # the niceness of the service's search processes
    try:
        out = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.nice(nice),
            timeout=len(seeds) * (args.budget + 300) + 120,
            check=False,
        )
    except subprocess.TimeoutExpired:  # one hung side must not cost the other figures
        log("  the Optuna script ran past its time limit")
        return {seed: {"error": "the Optuna script ran past its time limit"} for seed in seeds}
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            results[result["seed"]] = result
    if out.returncode != 0:
        log(f"  the Optuna script exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    for seed in seeds:
        results.setdefault(seed, {"error": f"the Optuna script exited {out.returncode}"})
    return results


def checks(
    table: Table,
    split: Split,
    runs: dict[str, Any],
    scores: dict[str, float],
    folds: int | None,
) -> list[str]:
    """Whether every side was scored on the same held-out rows and the baselines on the
    jobs' protocol; each problem found."""
    problems = []
    for side in SERVICE_JOBS:
        job = runs.get(side) or {}
        ran = "job_id" in job
        resolved = (job.get("cross_validation") or {}).get("folds") if ran else folds
        if resolved != folds:
            problems.append(f"{side}: the job ran {resolved} folds, the baselines {folds}")
        if job.get("test_rows") not in (None, len(split.test)):
            problems.append(f"{side}: {job['test_rows']} test rows, not {len(split.test)}")
        theirs = job.get("baselines") or {}
        if (
            scores
            and theirs
            and any(
                theirs.get(name) is None or abs(theirs[name] - value) > 1e-9
                for name, value in scores.items()
            )
        ):
            problems.append(f"{side}: the job's own baselines scored {theirs}, here {scores}")
        if job.get("test_score_via_predict"):
            problems.append(
                f"{side}: the job ({job.get('stop_reason')}) recorded no best.test_score; "
                "scored through /predict on the same rows"
            )
        if job.get("space_is_default") is False:
            problems.append(f"{side}: the job's search space is not the default for its width")
    digest = (runs.get("optuna") or {}).get("test_rows_digest")
    if digest is not None and digest != rows_digest(split.test):
        problems.append("optuna: its held-out rows are not the service's")
    return problems


def run_table(
    svc: Service, client: httpx.Client, name: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    path = write_table(name, workdir)
    table = Table(name, path, upload_csv(client, path, TARGET))
    seeds = list(range(1, args.seeds + 1))
    optuna: dict[int, Any] = {}
    if "optuna" in args.sides:
        wait_warm(svc)  # the worker's spare search process must not import meanwhile
        log(f"{name}: Optuna, seeds {seeds}")
        optuna = run_optuna(table, seeds, args)
    per_seed: dict[int, Any] = {}
    folds = table.folds(args.test_split)
    for seed in seeds:
        # The Optuna script's rows: one validation split, as a plain script has.
        split = table.split(seed, args.test_split)
        # The baselines' rows: the service's protocol for this table, as each job scores
        # its own (with folds: refit on every row but the test rows). The test rows are
        # the same either way.
        protocol = table.split(seed, args.test_split, folds)
        runs: dict[str, Any] = {"optuna": optuna.get(seed)}
        scores = baselines(table, protocol, seed) if "baselines" in args.sides else {}
        for side, algorithm in SERVICE_JOBS.items():
            if side in args.sides:
                time.sleep(1)  # the last search process may still be tearing down
                wait_warm(svc)
                log(f"{name}: service {side}, seed {seed}")
                runs[side] = run_job(client, table, split, seed, algorithm, args)
        runs.update(scores)
        runs["checks"] = checks(table, split, runs, scores, folds)
        for problem in runs["checks"]:
            log(f"  CHECK {name} seed {seed}: {problem}")
        per_seed[seed] = runs
    rows = {
        "train": len(split.train),
        "validation": len(split.validation),
        "test": len(split.test),
        "folds": folds,
    }
    return {
        "table": name,
        "rows": rows,
        "classes": len(table.profile.classes or []),
        "seeds": per_seed,
    }


def estimate_s(args: argparse.Namespace) -> float:
    """Measured overheads: 7 s per service job (the spare's import, the job's ending),
    1 s per Optuna seed and 8 s per Optuna process (its imports)."""
    jobs = sum(side in args.sides for side in SERVICE_JOBS)
    optuna = "optuna" in args.sides
    per_seed = jobs * (args.budget + 7) + optuna * (args.budget + 1)
    return len(args.tables) * (args.seeds * per_seed + 8 * optuna) + 10


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tables", default=",".join(TABLES), help=f"comma-separated, of {', '.join(TABLES)}"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per table (1..N)")
    parser.add_argument(
        "--budget", type=float, default=40.0, help="seconds per search (max_runtime_s, timeout)"
    )
    parser.add_argument(
        "--test-split", type=float, default=0.2, help="held-out fraction (training.test_split)"
    )
    parser.add_argument(
        "--sides", default=",".join(SIDES), help=f"what to run, of {', '.join(SIDES)}"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="the service's workers (default: as `make run` starts them, one per core)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    # `make run`'s layout (app.settings.serve_layout): workers, TensorFlow threads each.
    args.workers, args.threads = serve_layout(
        Settings() if args.workers is None else Settings(workers=args.workers)
    )
    args.tables = args.tables.split(",")
    args.sides = args.sides.split(",")
    unknown = [t for t in args.tables if t not in TABLES] + [
        s for s in args.sides if s not in SIDES
    ]
    if unknown or args.seeds < 1:
        parser.error(f"unknown tables or sides: {unknown}" if unknown else "--seeds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    log(
        f"about {estimate_s(args) / 60:.0f} min: {args.tables}, {args.seeds} seed(s), "
        f"{args.budget:.0f} s per search"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="tuner-bench-search-") as tmp:
        with service() as (svc, client):
            for _ in range(args.workers):
                svc.start_worker(child_threads=args.threads)
            for name in args.tables:
                results.append(run_table(svc, client, name, Path(tmp), args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(
        report(
            results,
            args,
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            load=f"{load_before} before, {' '.join(f'{x:.1f}' for x in os.getloadavg())} after",
            total_s=time.monotonic() - started,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
