"""The client commands of `tuner-service`: submit, jobs, status, trials, download, cancel.

They talk to a running service over HTTP through `tuner_client`, which is imported only
when one of them runs: `tuner-service api` and `worker` never load the client's
dependencies, and an image without the client package still runs those.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner_client import Client, TunerError

ALGORITHMS = ("random_search", "hyperband", "bayesian", "grid")
Command = Callable[["Client", argparse.Namespace], int]


class UsageError(Exception):
    """A local problem with the command line (unreadable --space file, say): exit 2."""


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _report(exc: TunerError) -> int:
    """Print a client error as the server put it (title, detail, each field) and exit 1."""
    from tuner_client import ConnectionFailed

    if isinstance(exc, ConnectionFailed):
        return _fail(f"{exc.title} ({exc.detail}); is it running? Set --url or TUNER_URL.")
    print(f"error: {exc}", file=sys.stderr)
    for problem in exc.errors:
        where = ".".join(str(p) for p in problem.get("loc") or [] if p != "body")
        print(f"  {where}: {problem.get('msg')}", file=sys.stderr)
    return 1


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from tuner_client import Client, TunerError

        # The service's log set-up puts httpx at INFO: a line per request would bury the
        # command's own output.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            with Client(args.url, args.api_key) as client:
                return command(client, args)
        except TunerError as exc:
            return _report(exc)
        except UsageError as exc:
            return _fail(str(exc), code=2)
        except OSError as exc:  # a local file: unreadable dataset, unwritable model path
            return _fail(str(exc))
        except KeyboardInterrupt:
            # Only the waiting stops: the job itself runs on in the service.
            return _fail(
                "interrupted (a submitted job keeps running; see `tuner-service jobs`)", 130
            )

    return run


# -- output ---------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]]) -> str:
    """Left-aligned columns under a header (pandas would cost the command seconds to load)."""
    columns = list(rows[0])
    cells = [columns, *([str(row[c]) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _score(job: dict[str, Any]) -> str:
    return "-" if not job.get("best") else f"{job['best']['score']:.4g}"


def _hyperparameters(values: dict[str, Any]) -> str:
    return " ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in values.items()
    )


def _summary(job: dict[str, Any]) -> list[str]:
    from tuner_client.progress import describe_best, describe_current

    progress = job["progress"]
    tuner = job["spec"].get("tuner", {})
    lines = [
        f"job       {job['id']}",
        f"status    {job['status']}" + (" (cancel requested)" if job["cancel_requested"] else ""),
        f"dataset   {job['dataset_id']}",
        f"algorithm {tuner.get('algorithm')}",
        f"trials    {progress['trials_completed']}/{progress['trials_planned']}",
    ]
    if progress.get("current_trial"):
        lines.append(f"running   {describe_current(job)}")
    lines.append(describe_best(job).replace("best ", "best      ", 1))
    if job.get("best"):
        wrapped = textwrap.wrap(_hyperparameters(job["best"]["hyperparameters"]), width=90)
        lines.extend(f"          {line}" for line in wrapped)
    if job.get("error"):
        lines.append(f"error     {job['error']}")
    for key in ("created_at", "started_at", "finished_at"):
        if job.get(key):
            lines.append(f"{key.removesuffix('_at'):<9} {job[key]}")
    return lines


def _read_space(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        space = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--space {path}: {exc}") from exc
    if not isinstance(space, dict):
        raise UsageError(f"--space {path}: expected a JSON object of hyperparameters")
    return space


# -- commands -------------------------------------------------------------------------


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    space = _read_space(args.space)
    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    dataset = client.upload(args.file, args.target, task=args.task)
    print(
        f"uploaded {args.file.name}: dataset {dataset['id']}, {dataset['rows']} rows, "
        f"{len(dataset['input_columns'])} input columns, {dataset['task']}",
        file=sys.stderr,
    )
    spec: dict[str, Any] = {"search_space": space} if space is not None else {}
    if args.parallel_trials is not None:
        spec["parallel_trials"] = args.parallel_trials
    job = client.submit(
        dataset,
        algorithm=args.algorithm,
        max_trials=args.max_trials,
        epochs=args.epochs,
        objective=args.objective,
        **spec,
    )
    # The id alone on stdout, so that `JOB=$(tuner-service submit ...)` works.
    print(job["id"], flush=True)
    print(
        f"submitted job {job['id']}: {job['spec']['tuner']['algorithm']}, "
        f"{job['progress']['trials_planned']} trials planned",
        file=sys.stderr,
    )
    if not args.wait:
        return 0
    final = client.wait(job, progress=True, raise_on_failure=False)
    print("\n".join(_summary(final)))
    return 0 if final["status"] == "succeeded" else 1


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    jobs = client.jobs(status=args.status)
    if not jobs:
        print("no jobs", file=sys.stderr)
        return 0
    rows = [
        {
            "id": j["id"],
            "status": j["status"],
            "algorithm": j["spec"].get("tuner", {}).get("algorithm"),
            "trials": f"{j['progress']['trials_completed']}/{j['progress']['trials_planned']}",
            "best": _score(j),
            "dataset": j["dataset_id"],
            "created": j["created_at"],
        }
        for j in jobs
    ]
    print(_table(rows))
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.job(args.job)
    print(json.dumps(job, indent=2) if args.json else "\n".join(_summary(job)))
    return 0


def cmd_trials(client: Client, args: argparse.Namespace) -> int:
    frame = client.trials(args.job, order=args.order)
    if args.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif frame.empty:
        print("no trials yet", file=sys.stderr)
    else:
        shown = frame.drop(columns=["message", "started_at", "finished_at"])
        # "-" for every gap (an inactive layer's units, no overfitting point), None included.
        print(shown.astype(object).where(shown.notna(), "-").to_string(index=False))
    return 0


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    path = client.download_model(args.job, args.output or Path.cwd())
    print(path)
    return 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.cancel(args.job)
    when = "" if job["status"] == "cancelled" else " (it stops at the end of its current epoch)"
    print(f"job {job['id']}: {job['status']}, cancel requested{when}")
    return 0


# -- argparse -------------------------------------------------------------------------


def _connection_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--url",
        help="the service's base URL (default: TUNER_URL, else http://127.0.0.1:8000)",
    )
    flags.add_argument("--api-key", help="Bearer key (default: TUNER_API_KEY)")
    return flags


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client commands on `tuner-service`'s subcommand parser."""
    common = [_connection_flags()]

    def command(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=common, help=help_text, description=help_text)
        parser.set_defaults(func=_run(func))
        return parser

    submit = command("submit", cmd_submit, "upload a dataset and submit a search on it")
    submit.add_argument("file", type=Path, help="CSV, Parquet or NPZ file")
    submit.add_argument("--target", help="the column to predict (NPZ: y)")
    submit.add_argument("--task", choices=("classification", "regression"))
    submit.add_argument("--algorithm", choices=ALGORITHMS, help="default: hyperband")
    submit.add_argument("--max-trials", type=int, help="trial budget")
    submit.add_argument("--epochs", type=int, help="epochs per trial (training.epochs)")
    submit.add_argument(
        "--parallel-trials", type=int, help="trials at once, each on a free worker (default 1)"
    )
    submit.add_argument("--objective", help="metric to optimize, e.g. val_loss")
    submit.add_argument("--space", type=Path, help="JSON file of search-space overrides")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="show progress until the job ends; exit 0 only if it succeeded",
    )

    jobs = command("jobs", cmd_jobs, "list jobs, newest first")
    jobs.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "cancelled"))

    status = command("status", cmd_status, "a job's status, progress and best trial")
    status.add_argument("job")
    status.add_argument("--json", action="store_true", help="the job as the API returns it")

    trials = command("trials", cmd_trials, "a job's trials, one hyperparameter per column")
    trials.add_argument("job")
    trials.add_argument("--csv", action="store_true", help="CSV on stdout")
    trials.add_argument("--order", choices=("started", "score"), default="started")

    download = command("download", cmd_download, "download a job's best model (.keras)")
    download.add_argument("job")
    download.add_argument("-o", "--output", type=Path, help="file or directory (default: .)")

    cancel = command("cancel", cmd_cancel, "cancel a queued or running job")
    cancel.add_argument("job")
