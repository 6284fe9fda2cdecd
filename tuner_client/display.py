"""Text the CLI prints: tables, a job's summary and a submission's estimate (plain strings;
the commands print)."""

from __future__ import annotations

import textwrap
from typing import Any

from tuner_client.budget import budget_source, clock, is_budgeted, time_text
from tuner_client.ids import trial_label
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


def summary(
    job: dict[str, Any], dataset_name: str | None = None, rows: int | None = None
) -> list[str]:
    """The job in a few lines; `dataset_name` (else the job's own `dataset_name`) beside the
    dataset's id; `rows`, the dataset's, in where an automatic budget came from."""
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
    ]
    # Under a time budget the planned trials are only a cap: the progress is the time.
    if is_budgeted(job):
        lines += [
            f"trials    {progress['trials_completed']} completed",
            f"time      {time_text(job)}",
            f"budget    {clock(job['spec']['max_runtime_s'])} ({budget_source(job['spec'], rows)})",
        ]
    else:
        lines.append(f"trials    {progress['trials_completed']}/{progress['trials_planned']}")
    lines += length_lines(job["spec"])
    if note := (job["spec"].get("derivation") or {}).get("note"):
        lines.append(f"note      {note}")
    if progress.get("current_trial"):
        lines.append(f"running   {describe_current(job)}")
    lines.append(describe_best(job).replace("best ", "best      ", 1))
    if job.get("best"):
        wrapped = textwrap.wrap(hyperparameters(job["best"]["hyperparameters"]), width=90)
        lines.extend(f"          {line}" for line in wrapped)
    if ensemble := job.get("ensemble"):
        lines += ensemble_lines(ensemble)
    if job.get("verdict"):
        lines.append(f"verdict   {job['verdict']}")
    if job.get("error"):
        lines.append(f"error     {job['error']}")
    if job.get("notes"):
        # The user's own text, its lines kept, under the same indent as the rest.
        first, *rest = job["notes"].strip().splitlines() or [""]
        lines += [f"notes     {first}", *(f"          {line}" for line in rest)]
    for key in ("created_at", "started_at", "finished_at"):
        if job.get(key):
            lines.append(f"{key.removesuffix('_at'):<9} {job[key]}")
    return lines


def _score(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def ensemble_lines(ensemble: dict[str, Any]) -> list[str]:
    """Whether the ensemble is the job's model, its score against the best trial alone's
    (both from the trials' own validation predictions), and its members with their weights."""
    metric = ensemble.get("metric") or "score"
    versus = (
        f"{metric} {_score(ensemble.get('score'))} vs the best trial alone's "
        f"{_score(ensemble.get('trial_score'))}"
    )
    if ensemble.get("used"):
        head = f"used, it is the job's model (download, predict, model card): {versus}"
        if ensemble.get("test_score") is not None:
            head += f"; {_score(ensemble['test_score'])} on the test rows"
    else:
        head = f"not used, the job's model is the best trial's: {versus}"
    members = ensemble.get("members") or []
    weights = ", ".join(f"{trial_label(m['trial_id'])} ({100 * m['weight']:.1f}%)" for m in members)
    count = f"{len(members)} trial{'' if len(members) == 1 else 's'}"
    wrapped = textwrap.wrap(f"{count}: {weights}", width=90)
    return [f"ensemble  {head}", *(f"          {line}" for line in wrapped)]


# The spec fields the service may derive from the table, in the order a reader wants them.
DERIVABLE = (
    "training.epochs",
    "callbacks.early_stopping.patience",
    "callbacks.reduce_lr_on_plateau.patience",
    "pruning.min_epochs",
    "tuner.max_epochs",
    "tuner.min_epochs",
)


def _value_at(spec: dict[str, Any], path: str) -> Any:
    value: Any = spec
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def estimate(preview: dict[str, Any], rows: int | None = None) -> list[str]:
    """What a submission would queue, from POST /jobs/preview's answer (or a job's resolved
    spec, as {spec, trials_planned, max_runtime_s}): its budget and where it came from, its
    trials, and the lengths derived from the table with the steps per epoch they came from."""
    spec = preview["spec"]
    derivation = spec.get("derivation") or {}
    seconds = spec.get("max_runtime_s")
    planned = preview["trials_planned"]
    algorithm = spec.get("tuner", {}).get("algorithm")
    if seconds is None:
        lines = [
            "budget    none: the search runs all its planned trials",
            f"trials    {planned} planned ({algorithm})",
        ]
    else:
        end = derivation.get("end_phase_s")
        lines = [
            f"budget    {clock(seconds)} ({budget_source(spec, rows)})"
            + (f"; the search stops {clock(end)} before it, for the end phase" if end else ""),
            f"trials    as many as the budget allows, at most {planned} ({algorithm})",
        ]
    lines += length_lines(spec)
    if derivation.get("note"):
        lines.append(f"note      {derivation['note']}")
    return lines


def length_lines(spec: dict[str, Any]) -> list[str]:
    """The steps an epoch takes (from the rows one fit trains on and the largest batch) and
    each training length: derived from them, or the user's; none for a job resolved
    without the table's size."""
    derivation = spec.get("derivation") or {}
    if not derivation.get("steps_per_epoch"):
        return []
    trial = derivation.get("trial_estimate_s")
    lines = [
        f"lengths   {derivation['steps_per_epoch']} steps per epoch "
        f"({derivation.get('fit_rows')} rows per fit, batch {derivation.get('batch_size')})"
        + (f"; one trial at most about {clock(trial)}" if trial else "")
    ]
    derived = derivation.get("derived") or []
    paths = [*DERIVABLE, *(p for p in derived if p not in DERIVABLE and p != "max_runtime_s")]
    for path in paths:
        value = _value_at(spec, path)
        if value is not None:
            tag = "derived" if path in derived else "yours"
            lines.append(f"          {path} = {value} ({tag})")
    return lines
