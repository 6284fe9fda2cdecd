"""What a finished search leaves, from the command line: download (the best model in each
format, or one trial's), model-card, pareto and importance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tuner_client.cli import UsageError, err, out
from tuner_client.client import Client
from tuner_client.display import hyperparameters, table
from tuner_client.ids import trial_label


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    job_id = client.resolve_job(args.job)
    if args.trial is not None and args.format != "keras":
        raise UsageError("--trial downloads a trial's .keras model: leave --format out")
    trial = None if args.trial is None else client.resolve_trial(job_id, args.trial)
    path = client.download_model(job_id, args.output or Path.cwd(), format=args.format, trial=trial)
    out(str(path))
    return 0


def cmd_model_card(client: Client, args: argparse.Namespace) -> int:
    job_id = client.resolve_job(args.job)
    card = client.model_card(job_id, markdown=not args.json)
    text = json.dumps(card, indent=2) + "\n" if args.json else card
    if args.output is None:
        out(text.rstrip("\n"))
    else:
        args.output.write_text(text)
        err(f"model card written to {args.output}")
    return 0


def cmd_pareto(client: Client, args: argparse.Namespace) -> int:
    front = client.pareto(client.resolve_job(args.job))
    if args.json:
        out(json.dumps(front, indent=2))
        return 0
    if not front["items"]:
        err("no completed trial on the front yet")
        return 0
    names = [o["name"] for o in front["objectives"]]
    heads = {o["name"]: f"{o['name']} ({o['direction']})" for o in front["objectives"]}
    rows = [
        {
            "trial": trial_label(item["trial_id"]),
            **{heads[n]: f"{item['objectives'][n]:.4g}" for n in names},
            "hyperparameters": hyperparameters(item["hyperparameters"]),
        }
        for item in front["items"]
    ]
    out(table(rows))
    err("each trial on the front keeps its model: `download JOB --trial ID`")
    return 0


def cmd_importance(client: Client, args: argparse.Namespace) -> int:
    found = client.importance(client.resolve_job(args.job))
    if args.json:
        out(json.dumps(found, indent=2))
        return 0
    rows = [
        {"hyperparameter": name, "importance": f"{100 * share:.1f}%"}
        for name, share in found["importances"].items()
    ]
    out(table(rows))
    err(f"over {found['trials']} completed trials ({found['method']})")
    return 0
