"""A job's time budget in words, as the dashboard words it: a budgeted job's progress is its
time (elapsed of the budget, and what is left), its trials only a count, since its
trials_planned is a cap the budget ends long before; and where the budget came from."""

from __future__ import annotations

import math
from typing import Any

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


def clock(seconds: float | None) -> str:
    """Whole seconds: "18 s", "1 min 12 s", "2 min", "1 h 5 min"."""
    if seconds is None:
        return "-"
    whole = max(0, math.floor(seconds + 0.5))  # half up, as the dashboard rounds
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(whole, 3600)
    minutes = math.floor(rest / 60 + 0.5)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def is_budgeted(job: dict[str, Any]) -> bool:
    return job["progress"].get("budget_s") is not None


def time_text(job: dict[str, Any]) -> str:
    """ "1 min 12 s of 1 min 30 s, 18 s left"; a queued job's clock has not started yet."""
    progress = job["progress"]
    budget, elapsed, left = progress["budget_s"], progress["elapsed_s"], progress["remaining_s"]
    if elapsed is None:
        return f"not started, budget {clock(budget)}"
    spent = f"{clock(elapsed)} of {clock(budget)}"
    if job["status"] in FINISHED:
        return f"ran {spent}"
    # The end phase (refit, baselines, ensemble, exports) may run a little past the budget.
    return f"{spent}, {clock(left)} left" if left else f"{spent}: budget spent, finishing"


def budget_source(spec: dict[str, Any], rows: int | None = None) -> str | None:
    """ "auto: derived from 150 rows and 2 workers", or "yours"; None without a budget.
    `rows`: the dataset's, when known."""
    if spec.get("max_runtime_s") is None:
        return None
    derivation = spec.get("derivation") or {}
    if derivation.get("budget_source") != "auto":
        return "yours"
    # The rows the budget was derived from (all but the test rows), else the dataset's.
    rows = derivation.get("train_rows", rows)
    table = "the table's size" if rows is None else f"{rows} row{'' if rows == 1 else 's'}"
    workers = derivation.get("workers")
    counted = f" and {workers} worker{'' if workers == 1 else 's'}" if workers else ""
    return f"auto: derived from {table}{counted}"
