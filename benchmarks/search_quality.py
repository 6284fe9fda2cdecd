"""`make bench-search`: is the model a user gets from the service any good? Held-out
scores of the default job against Optuna and two scikit-learn baselines, on four tables,
over five seeds.

For each table (benchmarks/search_tables.py) and seed, on the same held-out rows, one
after another with nothing else running:

- the service's default job as a user gets it, through the real service (`tuner-service
  api` and as many `tuner-service worker`s as `make run` starts, one per core unless
  `--workers`, each search process with `make run`'s TensorFlow threads; real HTTP,
  SQLite): the table uploaded, a job submitted with only `dataset_id`, `tuner.seed` and
  `training.test_split` (the held-out rows the scores need), so it runs with its own
  time budget (max_runtime_s derived from the table, app/search/training_length.py;
  `spec.derivation.budget_source == "auto"`) and every other default: TPE under that
  budget, `parallel_trials: "auto"`, folds, derived epochs, the ensemble. Its figure is
  its model's held-out score: the ensemble's `ensemble.test_score` where `ensemble.used`,
  else `best.test_score`; the best single trial's `best.test_score` is reported beside it;
- a plain Optuna search (benchmarks/optuna_script.py: TPE + Hyperband pruning, the
  job's resolved space and training, the same rows), right after the job, in its own
  process at the search processes' niceness, with the job's wall time (its started_at
  to finished_at: what the user waited) as its timeout; its best model scored on the
  held-out rows;
- the two baselines of tuner_jobs/search/baselines.py (logistic regression, gradient
  boosting), fitted on the service's training rows and scored on the held-out rows;
- with `--sides ...,hyperband`, for information, the same job with `tuner.algorithm:
  "hyperband"`.

`--budget N` gives every job `max_runtime_s: N` (quick runs); Optuna still gets the
job's wall time, about N. `--budget auto` (the default) leaves the budget to the job.

The held-out rows are the service's: `split_dataset` with the job's seed and test
fraction, as the search runner's `prepare` calls it. The run checks that they are: the
job's `best.test_metrics.rows`, the digest of the Optuna side's test rows, and the job's
own baselines' test scores against the ones computed here; and that the job ran the
default (its space as the API resolves it for the table, its budget's source).

Time: each table's default job takes up to its budget (two workers on two cores: 88 s
for wine, 140 s for breast cancer, 222 s for digits, 273 s for the generated table) and
Optuna as long again, plus the waits for the worker's next spare process, the Optuna
process's imports and the scoring: `estimate_s` below, about 2 hours 10 minutes for 4
tables x 5 seeds on two idle cores (`--budget 40`: about 35 minutes; one worker's
budgets are longer: about 3 hours). A loaded machine takes longer.

    python -m benchmarks.search_quality [--tables wine,digits] [--seeds 5]
        [--budget auto|N] [--workers 1] [--sides default,optuna,baselines]
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

from app.search.folds import resolve_folds, training_rows
from app.search.spec import JobCreate, resolve_spec
from app.search.table_profiles import class_label, load_training_frame, profile_frame
from app.search.table_readers import read_table
from app.search.training_length import auto_budget
from app.settings import Settings, serve_layout
from benchmarks.harness import FINISHED, ROOT, Service, service, upload_csv, wait_warm
from benchmarks.search_quality_report import SERVICE_JOBS, report
from benchmarks.search_tables import TABLES, TARGET, rows_digest, table_rows, write_table
from tuner_jobs.search.baselines import score_baselines
from tuner_jobs.search.split import Split, split_dataset

SIDES = ("default", "optuna", "baselines", "hyperband")
DEFAULT_SIDES = ("default", "optuna", "baselines")
VALIDATION_SPLIT = 0.2  # the service's default training.validation_split
OBJECTIVE = "val_accuracy"  # the service's default objective for classification
MAX_UNPACKED = 8 * (Settings().max_upload_mb << 20)  # as the search runner reads a table
# Measured overheads (estimate_s): a job beyond its budget (its wall time's overrun, the
# wait for the worker's next spare process to import TensorFlow, the teardown); an
# Optuna search beyond its timeout (its process's imports, the scoring, the wait before
# it for the worker's spare); a table's upload and profile.
# The start: the API, and the workers' spare processes importing TensorFlow.
JOB_EXTRA_S, OPTUNA_EXTRA_S, TABLE_EXTRA_S, STARTUP_S = 7.0, 12.0, 3.0, 30.0


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
        if dataset["features"] != self.profile.features or dataset["classes"] != (
            self.profile.classes
        ):
            raise RuntimeError(f"{name}: the service profiled the table differently")

    def smallest_class(self) -> int:
        counts = np.bincount(self.labels)
        return int(counts[counts > 0].min())

    def folds(self, test_split: float) -> int | None:
        """The folds the service's default job resolves for this table ("auto")."""
        return resolve_folds(
            "auto",
            test_split=test_split,
            classification=self.profile.task == "classification",
            rows=len(self.frame),
            smallest_class=self.smallest_class,
        )

    def default_space(self, test_split: float) -> dict[str, Any]:
        """The search space the API resolves for a job that gives only its dataset, seed
        and test fraction (app.search.spec.resolve_spec, the code the API runs)."""
        spec = JobCreate(dataset_id=self.dataset["id"], training={"test_split": test_split})
        _, space, _ = resolve_spec(
            spec,
            task=self.profile.task,
            features=self.profile.features,
            rows=len(self.frame),
            smallest_class=self.smallest_class,
        )
        return space

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


def job_spec(
    table: Table, seed: int, algorithm: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    """What a user submits for the default job (and what the held-out scores need)."""
    spec: dict[str, Any] = {
        "dataset_id": table.dataset["id"],
        "training": {"test_split": args.test_split},
        "tuner": {"seed": seed} | ({"algorithm": algorithm} if algorithm else {}),
    }
    if args.budget is not None:
        spec["max_runtime_s"] = args.budget
    return spec


def _ensemble(job: dict[str, Any]) -> dict[str, Any] | None:
    ensemble = job.get("ensemble")
    if not isinstance(ensemble, dict):
        return None
    return {
        "used": bool(ensemble.get("used")),
        "members": len(ensemble.get("members") or []),
        "score": ensemble.get("score"),
        "trial_score": ensemble.get("trial_score"),
        "test_score": ensemble.get("test_score"),
    }


def job_result(job: dict[str, Any], table: Table, args: argparse.Namespace) -> dict[str, Any]:
    """A finished job's figures: its model's held-out score (the ensemble's where used),
    its best single trial's, its budget and wall time, and what the checks read."""
    best = job.get("best") or {}
    metrics = best.get("test_metrics") or {}
    ensemble = _ensemble(job)
    used = ensemble is not None and ensemble["used"]
    spec = job["spec"]
    return {
        "job_id": job["id"],
        "status": job["status"],
        "stop_reason": job.get("stop_reason"),
        "error": job.get("error"),
        "score": best.get("score"),
        "test_score": ensemble["test_score"] if used else best.get("test_score"),
        "trial_test_score": best.get("test_score"),
        "ensemble": ensemble,
        "test_rows": metrics.get("rows"),
        "trials_completed": job["progress"]["trials_completed"],
        "budget_s": spec.get("max_runtime_s"),
        "budget_source": (spec.get("derivation") or {}).get("budget_source"),
        "epochs": spec["training"].get("epochs"),
        "wall_s": _seconds(job),
        "cross_validation": spec["training"].get("cross_validation"),
        "space_is_default": job["search_space"] == table.default_space(args.test_split),
        "baselines": {
            name: (value or {}).get("test_score")
            for name, value in (job.get("baselines") or {}).items()
            if isinstance(value, dict)
        },
    }


def run_job(
    client: httpx.Client,
    table: Table,
    split: Split,
    seed: int,
    algorithm: str | None,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One job through the API, as a user submits it but for the algorithm: its figures,
    and the job as GET /jobs/{id} returns it (None if it was refused)."""
    response = client.post("/api/v1/jobs", json=job_spec(table, seed, algorithm, args))
    if response.status_code == 422 and algorithm and "algorithm" in response.text:
        return {"unavailable": f"not available: {response.json().get('detail', '')}"}, None
    response.raise_for_status()
    job = response.json()
    limit = (job["spec"].get("max_runtime_s") or 3600) + 600
    deadline = time.monotonic() + limit
    while (job := client.get(f"/api/v1/jobs/{job['id']}").json())["status"] not in FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job['id']} still {job['status']} after {limit:.0f} s")
        time.sleep(0.5)
    result = job_result(job, table, args)
    if job["status"] != "succeeded":
        log(f"  job {job['id']} {job['status']}: {job.get('error')}")
    elif result["test_score"] is None:
        # The job should carry it (training.test_split); where it does not, its model (the
        # ensemble where used) is scored on the same rows through /predict, and the checks
        # say so.
        result["test_score"] = predict_accuracy(client, job["id"], table, split.test)
        result["test_score_via_predict"] = True
    return result, job


def preview(client: httpx.Client, table: Table, seed: int, args: argparse.Namespace) -> Any:
    """The default job as the API would resolve it, nothing queued (for an Optuna side
    run without the default job)."""
    response = client.post("/api/v1/jobs/preview", json=job_spec(table, seed, None, args))
    response.raise_for_status()
    return response.json()


def optuna_timeout(job: dict[str, Any]) -> tuple[float, str]:
    """The Optuna side's time: the job's wall time, else (the job did not run, or has no
    times) its budget."""
    wall = _seconds(job)
    if wall is not None:
        return wall, "the job's wall time"
    budget = job["spec"].get("max_runtime_s") or job.get("max_runtime_s")
    if budget is None:
        raise RuntimeError("the job has neither a wall time nor a budget")
    return float(budget), "the job's budget"


def run_optuna(table: Table, seed: int, job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """benchmarks/optuna_script.py for one seed, given the job's spec, space and time."""
    timeout, source = optuna_timeout(job)
    job_file = workdir / f"{table.name}-{seed}-job.json"
    job_file.write_text(json.dumps({k: job[k] for k in ("spec", "search_space")}))
    command = [
        sys.executable,
        "-m",
        "benchmarks.optuna_script",
        str(table.path),
        "--target",
        TARGET,
        "--seeds",
        str(seed),
        "--job",
        str(job_file),
        "--budget",
        f"{timeout:.1f}",
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
            timeout=timeout + 420,
            check=False,
        )
    except subprocess.TimeoutExpired:  # one hung side must not cost the other figures
        log("  the Optuna script ran past its time limit")
        return {"error": "the Optuna script ran past its time limit", "time_source": source}
    results = [
        json.loads(line.removeprefix("RESULT "))
        for line in out.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    if out.returncode != 0:
        log(f"  the Optuna script exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    if not results:
        return {"error": f"the Optuna script exited {out.returncode}", "time_source": source}
    return {**results[0], "time_source": source}


def checks(
    table: Table,
    split: Split,
    runs: dict[str, Any],
    scores: dict[str, float],
    folds: int | None,
    args: argparse.Namespace,
) -> list[str]:
    """Whether every side was scored on the same held-out rows, the baselines on the
    jobs' protocol, and the jobs ran the default; each problem found."""
    problems = []
    source = "auto" if args.budget is None else "user"
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
                f"{side}: the job ({job.get('stop_reason')}) recorded no held-out score; "
                "its model scored through /predict on the same rows"
            )
        if job.get("space_is_default") is False:
            problems.append(f"{side}: the job's search space is not the default for its table")
        if ran and job.get("budget_source") != source:
            problems.append(f"{side}: its budget's source is {job.get('budget_source')}")
    digest = (runs.get("optuna") or {}).get("test_rows_digest")
    if digest is not None and digest != rows_digest(split.test):
        problems.append("optuna: its held-out rows are not the service's")
    return problems


def run_seed(
    svc: Service,
    client: httpx.Client,
    table: Table,
    seed: int,
    workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    # The Optuna script's rows: one validation split, as a plain script has. The
    # baselines': the service's protocol for this table, as each job scores its own (with
    # folds: refit on every row but the test rows). The test rows are the same either way.
    folds = table.folds(args.test_split)
    split = table.split(seed, args.test_split)
    protocol = table.split(seed, args.test_split, folds)
    scores = baselines(table, protocol, seed) if "baselines" in args.sides else {}
    runs: dict[str, Any] = {}
    default_job = None
    if "default" in args.sides:
        wait_warm(svc)
        log(f"{table.name}: service default, seed {seed}")
        runs["default"], default_job = run_job(client, table, split, seed, None, args)
    if "optuna" in args.sides:
        job = default_job or preview(client, table, seed, args)
        time.sleep(1)  # the last search process may still be tearing down
        wait_warm(svc)  # the worker's next spare process must not import meanwhile
        log(f"{table.name}: Optuna, seed {seed}")
        runs["optuna"] = run_optuna(table, seed, job, workdir)
    if "hyperband" in args.sides:
        wait_warm(svc)
        log(f"{table.name}: service hyperband, seed {seed}")
        runs["hyperband"], _ = run_job(client, table, split, seed, "hyperband", args)
    runs.update(scores)
    runs["checks"] = checks(table, split, runs, scores, folds, args)
    for problem in runs["checks"]:
        log(f"  CHECK {table.name} seed {seed}: {problem}")
    return runs


def run_table(
    svc: Service, client: httpx.Client, name: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    path = write_table(name, workdir)
    table = Table(name, path, upload_csv(client, path, TARGET))
    seeds = range(1, args.seeds + 1)
    per_seed = {seed: run_seed(svc, client, table, seed, workdir, args) for seed in seeds}
    split = table.split(1, args.test_split)
    rows = {
        "train": len(split.train),
        "validation": len(split.validation),
        "test": len(split.test),
        "folds": table.folds(args.test_split),
    }
    return {
        "table": name,
        "rows": rows,
        "classes": len(table.profile.classes or []),
        "seeds": per_seed,
    }


def table_budget_s(name: str, args: argparse.Namespace) -> float:
    """A table's job budget: --budget, or the one the API derives (training_length)."""
    if args.budget is not None:
        return float(args.budget)
    return auto_budget(training_rows(table_rows(name), args.test_split), args.workers)


def estimate_s(args: argparse.Namespace) -> float:
    """Each default job its budget, each Optuna side about as long (the job's wall time),
    each hyperband job its budget, and the measured overheads around them."""
    sides = set(args.sides)
    jobs = len(sides & set(SERVICE_JOBS))
    total = STARTUP_S
    for name in args.tables:
        budget = table_budget_s(name, args)
        per_seed = jobs * (budget + JOB_EXTRA_S) + ("optuna" in sides) * (budget + OPTUNA_EXTRA_S)
        total += TABLE_EXTRA_S + args.seeds * per_seed
    return total


def parse_budget(text: str) -> float | None:
    if text == "auto":
        return None
    seconds = float(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError("a number of seconds above 0, or auto")
    return seconds


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tables", default=",".join(TABLES), help=f"comma-separated, of {', '.join(TABLES)}"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per table (1..N)")
    parser.add_argument(
        "--budget",
        type=parse_budget,
        default=None,
        help="each job's max_runtime_s in seconds, or auto (the default): the job's own",
    )
    parser.add_argument(
        "--test-split", type=float, default=0.2, help="held-out fraction (training.test_split)"
    )
    parser.add_argument(
        "--sides",
        default=",".join(DEFAULT_SIDES),
        help=f"what to run, of {', '.join(SIDES)}",
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
    budget = "each job's own budget" if args.budget is None else f"{args.budget:g} s per job"
    log(f"about {estimate_s(args) / 60:.0f} min: {args.tables}, {args.seeds} seed(s), {budget}")
    results = []
    with tempfile.TemporaryDirectory(prefix="tuner-bench-search-") as tmp:
        # TUNER_WORKERS: the API derives each job's budget for the workers it assumes.
        with service(workers=args.workers) as (svc, client):
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
