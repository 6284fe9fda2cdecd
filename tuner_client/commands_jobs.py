"""The job commands: submit (or its estimate, --dry-run), jobs, status (show), budget,
note, trials, cancel, delete."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tuner_client.budget import clock, is_budgeted, time_text
from tuner_client.cli import UsageError, err, out
from tuner_client.client import Client
from tuner_client.display import estimate, score, summary, table
from tuner_client.errors import NotFound
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


def _dataset_for_submit(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """The dataset: the one named by --dataset, or the file uploaded now."""
    if args.dataset is not None:
        if args.target or args.task:
            raise UsageError("--target and --task describe a file to upload, not --dataset")
        return client.dataset(client.resolve_dataset(args.dataset))
    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    dataset = client.upload(args.file, args.target, task=args.task)
    err(
        f"uploaded {args.file.name}: dataset {dataset['id']}, {dataset['rows']} rows, "
        f"{len(dataset['input_columns'])} input columns, {dataset['task']}"
    )
    return dataset


def _spec_arguments(args: argparse.Namespace, space: dict[str, Any] | None) -> dict[str, Any]:
    """The spec's sections the command line sets, as Client.submit's keywords."""
    spec: dict[str, Any] = {"search_space": space} if space is not None else {}
    optional = {"parallel_trials": args.parallel_trials, "name": args.name, "notes": args.notes}
    spec.update({key: value for key, value in optional.items() if value is not None})
    if args.max_runtime is not None:  # "none" is a null budget; left out, the server's
        spec["max_runtime_s"] = None if args.max_runtime == "none" else args.max_runtime
    if args.folds is not None:
        spec["training"] = {"cross_validation": None if args.folds == "none" else args.folds}
    return {
        "algorithm": args.algorithm,
        "max_trials": args.max_trials,
        "epochs": args.epochs,
        "objective": args.objective,
        **spec,
    }


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    if args.dry_run and args.wait:
        raise UsageError("--dry-run queues nothing, so there is nothing to --wait for")
    # Every local check before the upload: a typo in --space must not leave a dataset behind.
    space = read_space(args.space)
    dataset = _dataset_for_submit(client, args)
    spec = _spec_arguments(args, space)
    if args.dry_run:
        # The estimate is the command's output: on stdout. Nothing is queued.
        out("\n".join(estimate(client.preview(dataset["id"], **spec), dataset["rows"])))
        err("nothing queued (--dry-run)")
        return 0
    job = client.submit(dataset["id"], **spec)
    # The id alone on stdout, so that `JOB=$(tuner submit ...)` works.
    out(job["id"])
    err(f"submitted job {job['id']}: {job['spec']['tuner']['algorithm']}")
    resolved = {"spec": job["spec"], "trials_planned": job["progress"]["trials_planned"]}
    for line in estimate(resolved, dataset["rows"]):
        err(f"  {line}")
    if not args.wait:
        return 0
    final = client.wait(job, progress=True, raise_on_failure=False)
    out("\n".join(summary(final, rows=dataset["rows"])))
    return 0 if final["status"] == "succeeded" else 1


def dataset_names(client: Client, jobs: list[dict[str, Any]]) -> dict[str, str]:
    """Each job's dataset by name: the job's own `dataset_name` when the service gives it,
    else one listing of the datasets (an older service), else the dataset's id."""
    names = {j["dataset_id"]: j["dataset_name"] for j in jobs if j.get("dataset_name")}
    if any(j["dataset_id"] not in names for j in jobs):
        names.update({d["id"]: d["name"] for d in client.datasets() if d["id"] not in names})
    return {j["dataset_id"]: names.get(j["dataset_id"], j["dataset_id"]) for j in jobs}


def _trials_cell(job: dict[str, Any]) -> str:
    """ "3/20"; under a time budget the count and the time ("13, 1 min 12 s of 1 min 30 s"),
    since the planned trials are only a cap there."""
    progress = job["progress"]
    if not is_budgeted(job):
        return f"{progress['trials_completed']}/{progress['trials_planned']}"
    return f"{progress['trials_completed']}, {time_text(job)}"


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    dataset = client.resolve_dataset(args.dataset) if args.dataset else None
    jobs = client.jobs(status=args.status, search=args.search, dataset=dataset)
    if not jobs:
        filtered = args.status or args.search or dataset
        err("no jobs match" if filtered else "no jobs")
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
            "trials": _trials_cell(j),
            "best": score(j),
            "dataset": datasets[j["dataset_id"]],
            "created": j["created_at"],
        }
        for j in jobs
    ]
    out(table(rows))
    return 0


def _dataset_rows(client: Client, job: dict[str, Any]) -> int | None:
    """The job's dataset's rows (what an automatic budget came from), when it still has one."""
    if (job["spec"].get("derivation") or {}).get("budget_source") != "auto":
        return None
    try:
        return int(client.dataset(job["dataset_id"])["rows"])
    except NotFound:
        return None


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.job(client.resolve_job(args.job))
    if args.json:
        out(json.dumps(job, indent=2))
    else:
        name = dataset_names(client, [job])[job["dataset_id"]]
        out("\n".join(summary(job, name, _dataset_rows(client, job))))
    return 0


def cmd_budget(client: Client, args: argparse.Namespace) -> int:
    job = client.set_budget(client.resolve_job(args.job), args.seconds)
    spec = job["spec"]
    if spec.get("max_runtime_s") is None:
        planned = job["progress"]["trials_planned"]
        out(f"job {job['id']}: no time budget; it runs its {planned} planned trials")
    else:
        when = (
            "the clock starts when a worker claims it"
            if job["progress"]["elapsed_s"] is None
            else time_text(job)
        )
        out(f"job {job['id']}: time budget {clock(spec['max_runtime_s'])} (yours); {when}")
    return 0


def cmd_note(client: Client, args: argparse.Namespace) -> int:
    job_id = client.resolve_job(args.job)
    if args.text is None and not args.clear:
        notes = client.job(job_id).get("notes")
        if notes:
            out(notes)
        else:
            err(f"job {job_id} has no notes")
        return 0
    text = sys.stdin.read() if args.text == "-" else args.text
    job = client.set_notes(job_id, None if args.clear or not text.strip() else text)
    out(f"job {job['id']}: " + ("notes saved" if job.get("notes") else "no notes"))
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
