"""Trial tables and curves as CSV, read from the store (GET /jobs/{id}/trials.csv and
/trials/{trial_id}/metrics.csv)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.search.search_space import KNOWN_HYPERPARAMETERS
from app.store.models import Job, Trial, TrialEpoch

TRIAL_COLUMNS = (
    "trial_id",
    "status",
    "score",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    # Stopped by the job's pruning rule: its status stays COMPLETED, so without this column a
    # pruned trial reads as one that ran short for no reason.
    "pruned",
    "overfit_epoch",
    "generalization_gap",
    "duration_s",
    "worker",
)
_UNITS = re.compile(r"units_(\d+)")
_HYPERPARAMETER_RANK = {name: rank for rank, name in enumerate(KNOWN_HYPERPARAMETERS)}


def _to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    # Missing values (an inactive layer's units, a metric a trial never logged) stay empty.
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def _hyperparameter_order(name: str) -> tuple[int, int, str]:
    # Declaration order (num_layers, units_0, units_1, ..., activation, ...); the stored
    # JSON has no reliable key order (PostgreSQL's JSONB sorts keys).
    layer = _UNITS.fullmatch(name)
    base = "units" if layer else name
    rank = _HYPERPARAMETER_RANK.get(base, len(_HYPERPARAMETER_RANK))
    return rank, int(layer.group(1)) if layer else 0, name


def _metric_order(name: str) -> tuple[bool, str, bool]:
    # loss, val_loss, then each compiled metric next to its validation twin.
    base = name.removeprefix("val_")
    return base != "loss", base, name.startswith("val_")


def _final_epochs(session: Session, job: Job) -> dict[int, TrialEpoch]:
    """Each trial's last recorded epoch, by trial primary key."""
    last = (
        select(TrialEpoch.trial_pk, func.max(TrialEpoch.epoch).label("epoch"))
        .join(Trial, Trial.id == TrialEpoch.trial_pk)
        .where(Trial.job_id == job.id)
        .group_by(TrialEpoch.trial_pk)
        .subquery()
    )
    rows = session.scalars(
        select(TrialEpoch).join(
            last, (TrialEpoch.trial_pk == last.c.trial_pk) & (TrialEpoch.epoch == last.c.epoch)
        )
    ).all()
    return {row.trial_pk: row for row in rows}


def _epoch_metrics(row: TrialEpoch) -> dict[str, Any]:
    values = {k: v for k, v in row.metrics.items() if k != "learning_rate"}
    values.update(loss=row.loss, val_loss=row.val_loss)
    return values


def trials_csv(session: Session, job: Job) -> str:
    """One row per trial: its outcome, a column per hyperparameter and per final metric."""
    trials = session.scalars(
        select(Trial).where(Trial.job_id == job.id).order_by(Trial.started_at, Trial.trial_id)
    ).all()
    final = _final_epochs(session, job)
    rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    hyperparameters: set[str] = set()
    metrics: set[str] = set()
    for trial in trials:
        last = _epoch_metrics(final[trial.id]) if trial.id in final else {}
        hyperparameters.update(trial.hyperparameters)
        metrics.update(last)
        row = {column: getattr(trial, column) for column in TRIAL_COLUMNS}
        rows.append((row, trial.hyperparameters, last))
    hp_columns = sorted(hyperparameters, key=_hyperparameter_order)
    taken = set(TRIAL_COLUMNS) | hyperparameters
    # A metric never shadows a trial column or a hyperparameter of the same name.
    metric_columns = {m: f"final_{m}" if m in taken else m for m in metrics}
    ordered_metrics = sorted(metric_columns, key=_metric_order)
    columns = [*TRIAL_COLUMNS, *hp_columns, *(metric_columns[m] for m in ordered_metrics)]
    return _to_csv(
        columns,
        (
            {**row, **hps, **{metric_columns[m]: v for m, v in last.items()}}
            for row, hps, last in rows
        ),
    )


def metrics_csv(session: Session, trial: Trial) -> str:
    """The per-epoch curve: epoch, loss, val_loss, every logged metric, learning_rate."""
    epochs = session.scalars(
        select(TrialEpoch).where(TrialEpoch.trial_pk == trial.id).order_by(TrialEpoch.epoch)
    ).all()
    rows = [
        {"epoch": e.epoch, **_epoch_metrics(e), "learning_rate": e.learning_rate} for e in epochs
    ]
    names = {name for row in rows for name in row} - {"epoch", "learning_rate"}
    names |= {"loss", "val_loss"}
    return _to_csv(["epoch", *sorted(names, key=_metric_order), "learning_rate"], rows)


def safe_filename(*parts: str) -> str:
    """A Content-Disposition filename that needs no quoting or escaping."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts))
