"""The client commands, shared by `tuner` and `tuner-service`: submit, jobs, status (show),
budget, note, trials, download, model-card, pareto, importance, cancel, delete, predict, datasets,
delete-dataset.

They talk to a running service over HTTP through `tuner_client`. Each command's module
(commands_jobs, commands_results, commands_data) is imported only when that command runs,
so that `--help` and `tuner-service api` / `worker` load none of them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuner_client import Client, TunerError

ALGORITHMS = ("random_search", "hyperband", "bayesian", "grid", "tpe", "nsga2")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
Command = Callable[["Client", argparse.Namespace], int]


class UsageError(Exception):
    """A local problem with the command line (unreadable --space file, say): exit 2."""


def out(text: str = "") -> None:
    print(text, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def program_name(default: str) -> str:
    """The name the user ran, for usage lines: the script's basename, except under
    `python -m` (argv[0] is then a module's file, `__main__.py` or `cli.py`)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return default if not name or name.endswith(".py") or name == "-c" else name


def _fail(message: str, code: int = 1) -> int:
    err(f"error: {message}")
    return code


def _report(exc: TunerError, code: int = 1) -> int:
    """Print a client error as the server put it (title, detail, each field)."""
    from tuner_client import ConnectionFailed

    if isinstance(exc, ConnectionFailed):
        return _fail(
            f"{exc.title} ({exc.detail}); is it running? Set --url, TUNER_URL or TUNER_PORT."
        )
    err(f"error: {exc}")
    for problem in exc.errors:
        where = ".".join(str(p) for p in problem.get("loc") or [] if p != "body")
        err(f"  {where}: {problem.get('msg')}")
    return code


def _run(target: str, program: str) -> Callable[[argparse.Namespace], int]:
    """`target` is "module:function" under tuner_client, imported when the command runs."""

    def run(args: argparse.Namespace) -> int:
        from tuner_client import AmbiguousId, Client, TunerError

        module, function = target.split(":")
        command: Command = getattr(importlib.import_module(f"tuner_client.{module}"), function)
        # The service's log set-up puts httpx at INFO: a line per request would bury the
        # command's own output.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            with Client(args.url, args.api_key) as client:
                return command(client, args)
        except AmbiguousId as exc:  # the command line needs more of the id: a usage error
            return _report(exc, code=2)
        except TunerError as exc:
            return _report(exc)
        except UsageError as exc:
            return _fail(str(exc), code=2)
        except OSError as exc:  # a local file: unreadable dataset, unwritable model path
            return _fail(str(exc))
        except KeyboardInterrupt:
            # Only the waiting stops: the job itself runs on in the service.
            return _fail(f"interrupted (a submitted job keeps running; see `{program} jobs`)", 130)

    return run


def _parallel_trials(text: str) -> int | str:
    return "auto" if text == "auto" else int(text)


def _seconds(text: str, *, auto: bool) -> float | str | None:
    """A budget on the command line: seconds, "none" (no budget) or, for submit, "auto"."""
    if text == "none":
        return None if not auto else "none"
    if auto and text == "auto":
        return text
    try:
        seconds = float(text)
    except ValueError:
        words = "SECONDS, auto or none" if auto else "SECONDS or none"
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"a budget is more than 0 seconds, got {text!r}")
    return seconds


def _folds(text: str) -> dict[str, int] | str:
    """--folds 5 | auto | none: training.cross_validation is {"folds": 5}, "auto" or null."""
    return text if text in ("auto", "none") else {"folds": int(text)}


def _connection_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--url",
        help="the service's base URL (default: TUNER_URL, else http://127.0.0.1 at "
        "TUNER_PORT, else port 8000)",
    )
    flags.add_argument("--api-key", help="Bearer key (default: TUNER_API_KEY)")
    return flags


JOB_HELP = "job id, or a unique start of one (the short id the dashboard shows)"


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client commands on a subcommand parser (`tuner`'s or `tuner-service`'s)."""
    common = [_connection_flags()]

    def command(
        name: str, target: str, help_text: str, aliases: tuple[str, ...] = ()
    ) -> argparse.ArgumentParser:
        parser = sub.add_parser(
            name, aliases=list(aliases), parents=common, help=help_text, description=help_text
        )
        # Its prog is "<program> <name>": the program, for messages naming other commands.
        parser.set_defaults(func=_run(target, parser.prog.rsplit(" ", 1)[0]))
        return parser

    submit = command("submit", "commands_jobs:cmd_submit", "submit a search on a dataset")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("file", type=Path, nargs="?", help="CSV, Parquet or NPZ file to upload")
    source.add_argument("--dataset", help="an uploaded dataset's id (or a unique start of it)")
    submit.add_argument("--target", help="the column to predict (NPZ: y); with a file only")
    submit.add_argument("--task", choices=("classification", "regression"), help="with a file only")
    submit.add_argument("--name", help="a label for the job")
    submit.add_argument("--notes", help="free text on the job (`note` changes it later)")
    submit.add_argument(
        "--algorithm", choices=ALGORITHMS, help="default: hyperband, or tpe with --max-runtime"
    )
    submit.add_argument("--max-trials", type=int, help="trial budget")
    submit.add_argument("--epochs", type=int, help="epochs per trial (training.epochs)")
    submit.add_argument(
        "--max-runtime",
        type=lambda text: _seconds(text, auto=True),
        metavar="SECONDS|auto|none",
        help="the job's time budget (max_runtime_s): past it the search stops, keeping its "
        "best; default auto (derived from the table) unless --max-trials is given; none: "
        "no budget",
    )
    submit.add_argument(
        "--parallel-trials",
        type=_parallel_trials,
        metavar="N|auto",
        help="trials at once, each on a free worker (default auto: every idle worker helps)",
    )
    submit.add_argument(
        "--folds",
        type=_folds,
        metavar="K|auto|none",
        help="cross-validation (training.cross_validation; default auto: 5 folds under 1,000 rows)",
    )
    submit.add_argument("--objective", help="metric to optimize, e.g. val_loss")
    submit.add_argument("--space", type=Path, help="JSON file of search-space overrides")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="show progress until the job ends; exit 0 only if it succeeded",
    )
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be queued (the budget and where it came from, the epochs and "
        "patiences derived from the table) and queue nothing; a file is still uploaded",
    )

    jobs = command("jobs", "commands_jobs:cmd_jobs", "list jobs, newest first")
    jobs.add_argument("--status", choices=STATUSES)
    jobs.add_argument(
        "--search",
        metavar="TEXT",
        help="only jobs whose name, id, notes or dataset's name contain TEXT (any case)",
    )
    jobs.add_argument("--dataset", help="only jobs on this dataset (its id, or a unique start)")

    status = command(
        "status", "commands_jobs:cmd_status", "a job's status, progress, best", aliases=("show",)
    )
    status.add_argument("job", help=JOB_HELP)
    status.add_argument("--json", action="store_true", help="the job as the API returns it")

    budget = command(
        "budget",
        "commands_jobs:cmd_budget",
        "change a queued or running job's time budget (counted from its first start)",
    )
    budget.add_argument("job", help=JOB_HELP)
    budget.add_argument(
        "seconds",
        type=lambda text: _seconds(text, auto=False),
        metavar="SECONDS|none",
        help="the new budget in seconds, or none: no budget (the planned trials all run)",
    )

    note = command(
        "note",
        "commands_jobs:cmd_note",
        "a job's notes: print them, replace them with TEXT, or --clear them (any job, a "
        "finished one too)",
    )
    note.add_argument("job", help=JOB_HELP)
    note_text = note.add_mutually_exclusive_group()
    note_text.add_argument("text", nargs="?", help="the new notes (quote them); - reads stdin")
    note_text.add_argument("--clear", action="store_true", help="remove the job's notes")

    trials = command("trials", "commands_jobs:cmd_trials", "a job's trials, a column each HP")
    trials.add_argument("job", help=JOB_HELP)
    trials.add_argument("--csv", action="store_true", help="CSV on stdout")
    trials.add_argument("--order", choices=("started", "score"), default="started")

    download = command(
        "download", "commands_results:cmd_download", "a job's best model, or one trial's"
    )
    download.add_argument("job", help=JOB_HELP)
    download.add_argument("-o", "--output", type=Path, help="file or directory (default: .)")
    download.add_argument(
        "--format",
        choices=("keras", "saved_model", "onnx"),
        default="keras",
        help="keras (.keras, default), saved_model (.tar.gz for TensorFlow Serving) or onnx",
    )
    download.add_argument(
        "--trial",
        help="this trial's model (.keras): the best, or a Pareto-front trial (see `pareto`)",
    )

    card = command("model-card", "commands_results:cmd_model_card", "the best model's card")
    card.add_argument("job", help=JOB_HELP)
    card.add_argument("--json", action="store_true", help="the card as JSON (default: Markdown)")
    card.add_argument("-o", "--output", type=Path, help="write it to this file")

    pareto = command(
        "pareto", "commands_results:cmd_pareto", "a multi-objective job's Pareto front"
    )
    pareto.add_argument("job", help=JOB_HELP)
    pareto.add_argument("--json", action="store_true", help="the front as the API returns it")

    importance = command(
        "importance", "commands_results:cmd_importance", "how much each hyperparameter mattered"
    )
    importance.add_argument("job", help=JOB_HELP)
    importance.add_argument("--json", action="store_true", help="as the API returns it")

    cancel = command("cancel", "commands_jobs:cmd_cancel", "cancel a queued or running job")
    cancel.add_argument("job", help=JOB_HELP)

    delete = command("delete", "commands_jobs:cmd_delete", "delete a finished job and its files")
    delete.add_argument("job", help=JOB_HELP)

    predict = command(
        "predict", "commands_data:cmd_predict", "predict rows of a CSV with a job's best model"
    )
    predict.add_argument("job", help=JOB_HELP)
    predict.add_argument("rows", type=Path, help="CSV with the dataset's input columns")
    predict.add_argument("-o", "--output", type=Path, help="predictions CSV (default: stdout)")

    command("datasets", "commands_data:cmd_datasets", "list uploaded datasets, newest first")

    delete_dataset = command(
        "delete-dataset", "commands_data:cmd_delete_dataset", "delete a dataset no job uses"
    )
    delete_dataset.add_argument("dataset", help="dataset id, or a unique start of one")
