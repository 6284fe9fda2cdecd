"""A job with many trials and epochs, written straight into the database (no search runs).

The rows look like a real search's: hyperparameters as the recorder stores them, one
score per trial, per-epoch metrics as Keras logs them. SQLite gets one executemany per
table, PostgreSQL COPY: loading half a million rows must not eat the benchmark's budget.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from app.search.search_space import default_search_space
from app.store.models import Dataset, Job, JobStatus, Trial, TrialStatus

FEATURES = 12


def _dataset_row() -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "name": "bulk",
        "format": "csv",
        "sha256": "0" * 64,
        "size_bytes": 1,
        "rows": 2000,
        "target": "label",
        "task": "classification",
        "columns": [
            {"name": f"x{i}", "kind": "numeric", "missing": 0, "vocabulary": None}
            for i in range(FEATURES)
        ],
        "classes": ["no", "yes"],
        "features": FEATURES,
        "rows_dropped": 0,
    }


def job_row(dataset_id: str, *, trials: int, status: str = JobStatus.SUCCEEDED) -> dict[str, Any]:
    space = default_search_space(FEATURES)
    spec = {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": trials, "seed": 42},
        "objective": {"name": "val_accuracy", "direction": "max"},
        "training": {"epochs": 50, "validation_split": 0.2},
        "callbacks": {"early_stopping": None},
    }
    return {
        "id": uuid.uuid4().hex,
        "dataset_id": dataset_id,
        "status": status,
        "spec": spec,
        "search_space": space,
        "trials_planned": trials,
        "attempt": 1,
        "cancel_requested": False,
    }


def _hyperparameters(rng: random.Random) -> dict[str, Any]:
    layers = rng.randint(1, 3)
    values: dict[str, Any] = {"num_layers": layers}
    values.update({f"units_{i}": rng.choice([8, 16, 32, 64]) for i in range(layers)})
    values.update(
        activation=rng.choice(["relu", "tanh"]),
        dropout=rng.choice([0.0, 0.1, 0.2, 0.3, 0.4]),
        kernel_initializer=rng.choice(["glorot_uniform", "he_normal"]),
        optimizer=rng.choice(["adam", "rmsprop"]),
        learning_rate=10 ** rng.uniform(-4, -2),
        batch_size=rng.choice([32, 64, 128]),
        l2=0.0,
        batch_norm=False,
    )
    return values


def make_dataset_and_job(engine: Engine, *, trials: int) -> str:
    dataset = _dataset_row()
    job = job_row(dataset["id"], trials=trials)
    with engine.begin() as conn:
        conn.execute(insert(Dataset), [dataset])
        conn.execute(insert(Job), [job])
    return job["id"]


def load_trials(engine: Engine, job_id: str, *, trials: int, epochs: int) -> list[str]:
    """`trials` finished trials of `epochs` epochs each; returns their trial ids."""
    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    trial_rows = []
    for n in range(trials):
        began = start + timedelta(seconds=10 * n)
        trial_rows.append(
            {
                "job_id": job_id,
                "trial_id": f"{n:05d}",
                "status": TrialStatus.COMPLETED,
                "hyperparameters": _hyperparameters(rng),
                "score": rng.random(),
                "best_epoch": rng.randrange(epochs),
                "epochs_run": epochs,
                "stopped_early": False,
                "started_at": began,
                "finished_at": began + timedelta(seconds=9),
                "duration_s": 9.0,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Trial), trial_rows)
        pks = dict(
            conn.exec_driver_sql(
                "SELECT trial_id, id FROM trials WHERE job_id = %s"
                if engine.dialect.name == "postgresql"
                else "SELECT trial_id, id FROM trials WHERE job_id = ?",
                (job_id,),
            ).all()
        )
    _load_epochs(engine, [pks[r["trial_id"]] for r in trial_rows], epochs, rng)
    return [r["trial_id"] for r in trial_rows]


def _epoch_rows(pks: list[int], epochs: int, rng: random.Random, recorded: Any):  # type: ignore[no-untyped-def]
    for pk in pks:
        for epoch in range(epochs):
            loss = 1.0 / (epoch + 1) + rng.random() * 0.05
            val_loss = loss + 0.05 + rng.random() * 0.05
            # The JSON Keras logs would give, written by hand: json.dumps would be most
            # of the loading time (a float's repr is valid JSON).
            metrics = (
                f'{{"loss": {loss!r}, "val_loss": {val_loss!r}, "accuracy": {1 - loss / 2!r}, '
                f'"val_accuracy": {1 - val_loss / 2!r}, "learning_rate": 0.001}}'
            )
            yield pk, epoch, loss, val_loss, 0.001, metrics, recorded


COLUMNS = "trial_pk, epoch, loss, val_loss, learning_rate, metrics, recorded_at"


def _load_epochs(engine: Engine, pks: list[int], epochs: int, rng: random.Random) -> None:
    recorded = datetime(2026, 1, 1, tzinfo=UTC)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY trial_epochs ({COLUMNS}) FROM STDIN") as copy:
                for row in _epoch_rows(pks, epochs, rng, recorded):
                    copy.write_row(row)
        else:
            # SQLAlchemy's SQLite DateTime is text in this format, without the zone.
            text = recorded.strftime("%Y-%m-%d %H:%M:%S.%f")
            cursor.execute("BEGIN")
            cursor.executemany(
                f"INSERT INTO trial_epochs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _epoch_rows(pks, epochs, rng, text),
            )
        raw.commit()
    finally:
        raw.close()
