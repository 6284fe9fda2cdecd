"""Trials as a pandas DataFrame."""

from __future__ import annotations

from typing import Any

import pandas as pd

# The trial fields the API returns, in the order a reader scans them; hyperparameters
# follow, one column each, named as the API names them (like the server's trials.csv).
TRIAL_COLUMNS = [
    "trial_id",
    "status",
    "score",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "pruned",
    "overfit_epoch",
    "generalization_gap",
    "duration_s",
    "worker",
    "message",
    "started_at",
    "finished_at",
]


def trials_frame(trials: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial; each hyperparameter a column (missing where a trial lacks it, as an
    inactive layer's `units_<i>`)."""
    hp_names: dict[str, None] = {}  # an ordered set: first appearance decides the column order
    for trial in trials:
        hp_names.update(dict.fromkeys(trial.get("hyperparameters") or {}))
    # A hyperparameter named like a trial field would overwrite it; prefix it instead.
    column_of = {name: f"hp_{name}" if name in TRIAL_COLUMNS else name for name in hp_names}
    rows = []
    for trial in trials:
        row = {key: trial.get(key) for key in TRIAL_COLUMNS}
        for name, value in (trial.get("hyperparameters") or {}).items():
            row[column_of[name]] = value
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*TRIAL_COLUMNS, *column_of.values()])
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
