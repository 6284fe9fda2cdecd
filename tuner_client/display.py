"""Text the CLI prints: tables and a job's summary (plain strings; the commands print)."""

from __future__ import annotations

import textwrap
from typing import Any

from tuner_client.progress import describe_best, describe_current


def table(rows: list[dict[str, Any]]) -> str:
    """Left-aligned columns under a header (pandas would cost the command seconds to load)."""
    columns = list(rows[0])
    cells = [columns, *([str(row[c]) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def score(job: dict[str, Any]) -> str:
    return "-" if not job.get("best") else f"{job['best']['score']:.4g}"


def hyperparameters(values: dict[str, Any]) -> str:
    return " ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in values.items()
    )


def summary(job: dict[str, Any], dataset_name: str | None = None) -> list[str]:
    """The job in a few lines; `dataset_name` (else the job's own `dataset_name`) beside the
    dataset's id."""
    progress = job["progress"]
    name = dataset_name or job.get("dataset_name")
    dataset = job["dataset_id"]
    if name and name != dataset:
        dataset = f"{name} ({dataset})"
    tuner = job["spec"].get("tuner", {})
    lines = [f"job       {job['id']}"]
    if job.get("name"):
        lines.append(f"name      {job['name']}")
    lines += [
        f"status    {job['status']}" + (" (cancel requested)" if job["cancel_requested"] else ""),
        f"dataset   {dataset}",
        f"algorithm {tuner.get('algorithm')}",
        f"trials    {progress['trials_completed']}/{progress['trials_planned']}",
    ]
    if progress.get("current_trial"):
        lines.append(f"running   {describe_current(job)}")
    lines.append(describe_best(job).replace("best ", "best      ", 1))
    if job.get("best"):
        wrapped = textwrap.wrap(hyperparameters(job["best"]["hyperparameters"]), width=90)
        lines.extend(f"          {line}" for line in wrapped)
    if (ensemble := job.get("ensemble")) and ensemble.get("used"):
        lines.append(
            f"ensemble  {len(ensemble['members'])} trials, score {ensemble['score']:.4g} "
            f"(the best trial alone: {ensemble['trial_score']:.4g}): the job's model"
        )
    if job.get("verdict"):
        lines.append(f"verdict   {job['verdict']}")
    if job.get("error"):
        lines.append(f"error     {job['error']}")
    for key in ("created_at", "started_at", "finished_at"):
        if job.get(key):
            lines.append(f"{key.removesuffix('_at'):<9} {job[key]}")
    return lines
