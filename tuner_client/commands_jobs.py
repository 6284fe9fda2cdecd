"""The job commands: submit, jobs, status (show), trials, cancel, delete."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tuner_client.cli import UsageError, err, out
from tuner_client.client import Client
from tuner_client.display import score, summary, table
from tuner_client.ids import short_ids, trial_label


def read_space(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        space = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--space {path}: {exc}") from exc
    if not isinstance(space, dict):
        raise UsageError(f"--space {path}: expected a JSON object of hyperparameters")
    return space


def _dataset_for_submit(client: Client, args: argparse.Namespace) -> str:
    """The dataset's id: the one named by --dataset, or the file uploaded now."""
    if args.dataset is not None:
        if args.target or args.task:
            raise UsageError("--target and --task describe a file to upload, not --dataset")
        return client.resolve_dataset(args.dataset)
    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    dataset = client.upload(args.file, args.target, task=args.task)
    err(
        f"uploaded {args.file.name}: dataset {dataset['id']}, {dataset['rows']} rows, "
        f"{len(dataset['input_columns'])} input columns, {dataset['task']}"
    )
    return str(dataset["id"])


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    # Every local check before the upload: a typo in --space must not leave a dataset behind.
    space = read_space(args.space)
    dataset_id = _dataset_for_submit(client, args)
    spec: dict[str, Any] = {"search_space": space} if space is not None else {}
    optional = {
        "parallel_trials": args.parallel_trials,
        "max_runtime_s": args.max_runtime,
        "name": args.name,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    if args.folds is not None:
        spec["training"] = {"cross_validation": None if args.folds == "none" else args.folds}
    job = client.submit(
        dataset_id,
        algorithm=args.algorithm,
        max_trials=args.max_trials,
        epochs=args.epochs,
        objective=args.objective,
        **spec,
    )
    # The id alone on stdout, so that `JOB=$(tuner submit ...)` works.
    out(job["id"])
    err(
        f"submitted job {job['id']}: {job['spec']['tuner']['algorithm']}, "
        f"{job['progress']['trials_planned']} trials planned"
    )
    if not args.wait:
        return 0
    final = client.wait(job, progress=True, raise_on_failure=False)
    out("\n".join(summary(final)))
    return 0 if final["status"] == "succeeded" else 1


def dataset_names(client: Client, jobs: list[dict[str, Any]]) -> dict[str, str]:
    """Each job's dataset by name: the job's own `dataset_name` when the service gives it,
    else one listing of the datasets (an older service), else the dataset's id."""
    names = {j["dataset_id"]: j["dataset_name"] for j in jobs if j.get("dataset_name")}
    if any(j["dataset_id"] not in names for j in jobs):
        names.update({d["id"]: d["name"] for d in client.datasets() if d["id"] not in names})
    return {j["dataset_id"]: names.get(j["dataset_id"], j["dataset_id"]) for j in jobs}


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    jobs = client.jobs(status=args.status)
    if not jobs:
        err("no jobs")
        return 0
    # The shortest unique start of each id, as the dashboard shows it: every command takes it.
    ids = short_ids([j["id"] for j in jobs])
    datasets = dataset_names(client, jobs)
    rows = [
        {
            "id": ids[j["id"]],
            "name": j.get("name") or "-",
            "status": j["status"],
            "algorithm": j["spec"].get("tuner", {}).get("algorithm"),
            "trials": f"{j['progress']['trials_completed']}/{j['progress']['trials_planned']}",
            "best": score(j),
            "dataset": datasets[j["dataset_id"]],
            "created": j["created_at"],
        }
        for j in jobs
    ]
    out(table(rows))
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.job(client.resolve_job(args.job))
    if args.json:
        out(json.dumps(job, indent=2))
    else:
        out("\n".join(summary(job, dataset_names(client, [job])[job["dataset_id"]])))
    return 0


def cmd_trials(client: Client, args: argparse.Namespace) -> int:
    frame = client.trials(client.resolve_job(args.job), order=args.order)
    if args.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif frame.empty:
        err("no trials yet")
    else:
        shown = frame.drop(columns=["message", "started_at", "finished_at"])
        shown["trial_id"] = shown["trial_id"].map(trial_label)
        # "-" for every gap (an inactive layer's units, no overfitting point), None included.
        out(shown.astype(object).where(shown.notna(), "-").to_string(index=False))
    return 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.cancel(client.resolve_job(args.job))
    when = "" if job["status"] == "cancelled" else " (it stops at the end of its current epoch)"
    out(f"job {job['id']}: {job['status']}, cancel requested{when}")
    return 0


def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    job_id = client.resolve_job(args.job)
    client.delete(job_id)
    out(f"job {job_id}: deleted, with its trials and files")
    return 0
