"""Exports: trials and curves as CSV, the search space as KerasTuner's own config."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import keras_tuner as kt
import pytest
from sqlalchemy import Engine

from app.search.keras_tuner_config import keras_tuner_config
from app.search.search_space import effective_search_space
from app.store.models import Job, Trial, TrialEpoch
from app.store.unit_of_work import write_session
from tests.conftest import sqlite_only
from tests.factories import (
    assert_problem,
    customers_frame,
    dataset_row,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)
from tuner_jobs.search.hyperparameters import build_hyperparameters

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
]


def exact(value: Any) -> str:
    """JSON that tells 1 from 1.0 and True from 1 and keeps key order, so "equal" means
    equal types and order too (KerasTuner's seeded sampling follows declaration order)."""
    return json.dumps(value)


def parse_csv(response: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def cell(value: Any) -> str:
    """How a JSON value reads in the CSV (floats keep every digit, None is empty)."""
    return "" if value is None else str(value)


SPACES: dict[str, tuple[dict[str, Any], int]] = {
    "defaults": ({}, 7),
    # Layers 1 and 3 only: units_1 and units_2 are both conditional on num_layers == 3.
    "choice of layer counts": (
        {"num_layers": {"type": "choice", "values": [1, 3]}, "units": {"type": "pow2"}},
        40,
    ),
    "stepped layers, log-sampled int units": (
        {
            "num_layers": {"type": "int", "min": 2, "max": 4, "step": 2},
            "units": {"type": "int", "min": 8, "max": 100, "sampling": "log"},
            "learning_rate": {
                "type": "float",
                "min": 1e-5,
                "max": 1e-1,
                "step": 10,
                "sampling": "log",
            },
            "batch_size": {"type": "pow2", "min": 16, "max": 128, "default": 32},
        },
        3,
    ),
    "fixed layers, every other type": (
        {
            "num_layers": {"type": "fixed", "value": 2},
            "units": {"type": "choice", "values": [16, 64], "default": 64},
            "dropout": {"type": "choice", "values": [0, 0.25, 0.5]},
            "batch_norm": {"type": "boolean", "default": True},
            "l2": {"type": "float", "min": 0, "max": 0.01, "step": 0.005},
            "activation": {"type": "fixed", "value": "tanh"},
            "optimizer": {"type": "choice", "values": ["adam", "sgd"], "default": "sgd"},
            "learning_rate": {"type": "float", "min": 0.001, "max": 0.1, "default": 0.01},
        },
        12,
    ),
    # KerasTuner stores a Choice of booleans as 0/1; the mirror must too.
    "boolean choice": (
        {
            "num_layers": {"type": "int", "min": 1, "max": 3, "default": 2},
            "batch_norm": {"type": "choice", "values": [True, False], "default": False},
            "batch_size": {"type": "fixed", "value": 64},
        },
        5,
    ),
}


@pytest.mark.parametrize("name", SPACES)
def test_the_search_runs_with_exactly_the_exported_config(name: str) -> None:
    user_space, features = SPACES[name]
    space = effective_search_space(user_space, features=features)
    exported = keras_tuner_config(space)
    searched = build_hyperparameters(space)
    # Every entry comes back unchanged through KerasTuner's own constructors: what the
    # search runs with is the export, down to types, defaults and order.
    assert exact(searched.get_config()) == exact(exported)
    # And the export's starting values are the ones KerasTuner gives when the same
    # hyperparameters are declared one by one (conditional ones only when active).
    declared = kt.HyperParameters()
    declared.merge(searched.space)
    assert exact(declared.get_config()) == exact(exported)


def test_keras_tuner_config_keeps_per_layer_units_conditional() -> None:
    space = effective_search_space(SPACES["choice of layer counts"][0], features=40)
    config = keras_tuner_config(space)
    units = {p["config"]["name"]: p["config"] for p in config["space"]}
    assert units["units_0"]["conditions"] == []
    for layer in (1, 2):
        assert units[f"units_{layer}"]["conditions"] == [
            {"class_name": "Parent", "config": {"name": "num_layers", "values": [3]}}
        ]
    # Only what is active at the defaults has a value: one layer, so only units_0.
    assert config["values"]["num_layers"] == 1
    assert "units_0" in config["values"]
    assert "units_1" not in config["values"]
    hp = kt.HyperParameters.from_config(config)
    hp.values["num_layers"] = 3
    assert hp.is_active("units_2")


def _insert_job(engine: Engine) -> str:
    """A job whose trials differ in layers and metrics, one still without epochs."""
    with write_session(engine) as session:
        dataset = dataset_row("classification")
        session.add(dataset)
        session.flush()
        job = Job(
            dataset_id=dataset.id,
            spec={"objective": {"name": "val_loss", "direction": "min"}},
            search_space={},
            trials_planned=3,
        )
        session.add(job)
        session.flush()
        one = Trial(
            job_id=job.id,
            trial_id="00",
            status="COMPLETED",
            hyperparameters={"num_layers": 1, "units_0": 8, "learning_rate": 0.01},
            score=0.25,
            best_epoch=1,
            epochs_run=2,
            overfit_epoch=None,
            generalization_gap=0.125,
            duration_s=1.5,
        )
        two = Trial(
            job_id=job.id,
            trial_id="01",
            status="COMPLETED",
            hyperparameters={"units_1": 4, "num_layers": 2, "units_0": 16, "learning_rate": 0.001},
            score=0.5,
            best_epoch=0,
            epochs_run=1,
            stopped_early=True,
            overfit_epoch=0,
            duration_s=0.5,
        )
        running = Trial(
            job_id=job.id,
            trial_id="02",
            hyperparameters={"num_layers": 1, "units_0": 32, "learning_rate": 0.1},
        )
        session.add_all([one, two, running])
        session.flush()
        for epoch, (loss, val) in enumerate([(0.75, 0.5), (0.375, 0.25)]):
            metrics = {"loss": loss, "accuracy": 0.5, "val_loss": val, "val_accuracy": 0.75}
            session.add(
                TrialEpoch(
                    trial_pk=one.id,
                    epoch=epoch,
                    loss=loss,
                    val_loss=val,
                    learning_rate=0.01,
                    metrics=metrics,
                )
            )
        session.add(
            TrialEpoch(
                trial_pk=two.id,
                epoch=0,
                loss=0.5,
                val_loss=None,
                learning_rate=0.001,
                metrics={"loss": 0.5, "val_loss": None, "mae": 0.25},
            )
        )
    return job.id


def test_trials_csv_takes_the_union_of_columns_and_the_last_epoch(
    api: httpx.Client, engine: Engine
) -> None:
    job_id = _insert_job(engine)
    response = api.get(f"/api/v1/jobs/{job_id}/trials.csv")
    columns, rows = parse_csv(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="job-{job_id}-trials.csv"'
    )
    hps = ["num_layers", "units_0", "units_1", "learning_rate"]
    metrics = ["loss", "val_loss", "accuracy", "val_accuracy", "mae"]
    assert columns == [*TRIAL_COLUMNS, *hps, *metrics]
    assert [r["trial_id"] for r in rows] == ["00", "01", "02"]
    one, two, running = rows
    assert one["duration_s"] == "1.5"
    assert (one["score"], one["best_epoch"], one["generalization_gap"]) == ("0.25", "1", "0.125")
    assert (one["units_1"], one["overfit_epoch"]) == ("", "")  # a layer it does not have
    assert (one["loss"], one["val_loss"], one["val_accuracy"], one["mae"]) == (
        "0.375",
        "0.25",
        "0.75",
        "",
    )
    assert (two["units_1"], two["stopped_early"], two["overfit_epoch"]) == ("4", "True", "0")
    assert (two["loss"], two["val_loss"], two["mae"]) == ("0.5", "", "0.25")
    assert running["status"] == "RUNNING"
    assert all(running[m] == "" for m in metrics)


def test_metrics_csv_lists_every_epoch(api: httpx.Client, engine: Engine) -> None:
    job_id = _insert_job(engine)
    response = api.get(f"/api/v1/jobs/{job_id}/trials/00/metrics.csv")
    columns, rows = parse_csv(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="job-{job_id}-trial-00-metrics.csv"'
    )
    assert columns == ["epoch", "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"]
    assert [list(r.values()) for r in rows] == [
        ["0", "0.75", "0.5", "0.5", "0.75", "0.01"],
        ["1", "0.375", "0.25", "0.5", "0.75", "0.01"],
    ]
    columns, rows = parse_csv(api.get(f"/api/v1/jobs/{job_id}/trials/02/metrics.csv"))
    assert (columns, rows) == (["epoch", "loss", "val_loss", "learning_rate"], [])


def test_exports_of_unknown_jobs_and_trials_are_404(api: httpx.Client, engine: Engine) -> None:
    job_id = _insert_job(engine)
    assert_problem(api.get("/api/v1/jobs/nope/trials.csv"), 404, "job", "nope")
    assert_problem(api.get("/api/v1/jobs/nope/trials/00/metrics.csv"), 404, "job", "nope")
    assert_problem(api.get(f"/api/v1/jobs/{job_id}/trials/99/metrics.csv"), 404, "trial", "99")
    assert_problem(api.get("/api/v1/jobs/nope/search_space"), 404, "job", "nope")
    bad = api.get(f"/api/v1/jobs/{job_id}/search_space", params={"format": "yaml"})
    assert_problem(bad, 422, "format")
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/jobs/{job_id}/trials.csv",
        "/api/v1/jobs/{job_id}/trials/{trial_id}/metrics.csv",
        "/api/v1/jobs/{job_id}/search_space",
        "/api/v1/jobs/{job_id}/trials/{trial_id}",
    } <= paths.keys()


FAST_SPACE = {
    "num_layers": {"type": "int", "min": 1, "max": 2},
    "units": {"type": "pow2", "min": 8, "max": 16},
    "batch_size": {"type": "fixed", "value": 64},
}


@pytest.mark.slow
@sqlite_only
def test_exports_of_a_real_search(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3},
        training={"epochs": 3},
        search_space=FAST_SPACE,
    )
    start_worker()
    assert wait_for_job(api, job["id"], timeout=180)["status"] == "succeeded"
    base = f"/api/v1/jobs/{job['id']}"
    trials = {t["trial_id"]: t for t in trials_of(api, job["id"])}

    columns, rows = parse_csv(api.get(f"{base}/trials.csv"))
    hps = sorted({name for t in trials.values() for name in t["hyperparameters"]})
    assert set(columns) == {*TRIAL_COLUMNS, *hps, "loss", "val_loss", "accuracy", "val_accuracy"}
    assert len(rows) == len(trials) == 3
    for row in rows:
        trial = trials[row["trial_id"]]
        detail = api.get(f"{base}/trials/{row['trial_id']}").json()  # JSON, not the CSV route
        for column in TRIAL_COLUMNS:
            assert row[column] == cell(trial[column]), column
        for name in hps:
            assert row[name] == cell(trial["hyperparameters"].get(name)), name
        last = detail["metrics"][-1]
        assert [float(row[m]) for m in ("loss", "val_loss", "accuracy", "val_accuracy")] == [
            last[m] for m in ("loss", "val_loss", "accuracy", "val_accuracy")
        ]

        columns, epochs = parse_csv(api.get(f"{base}/trials/{row['trial_id']}/metrics.csv"))
        assert columns == ["epoch", "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"]
        assert len(epochs) == trial["epochs_run"] == len(detail["metrics"])
        for line, epoch in zip(epochs, detail["metrics"], strict=True):
            assert {k: float(v) for k, v in line.items()} == {k: epoch[k] for k in columns}

    stored = api.get(f"{base}/search_space")
    assert stored.status_code == 200
    assert (
        stored.json() == job["search_space"] == api.get(f"{base}/search_space?format=json").json()
    )
    config = api.get(f"{base}/search_space", params={"format": "keras_tuner"}).json()
    # What a user pastes into a plain KerasTuner script is what the worker searched: the
    # space as stored, in the stored key order (PostgreSQL's JSONB reorders keys).
    assert exact(config) == exact(build_hyperparameters(stored.json()).get_config())
    # from_config swaps the condition dicts for objects in place: give it a copy.
    hp = kt.HyperParameters.from_config(json.loads(json.dumps(config)))
    assert exact(hp.get_config()) == exact(config)
    assert {p.name for p in hp.space} == {
        "num_layers",
        "units_0",
        "units_1",
        *job["search_space"],
    } - {"units"}
    # KerasTuner starts an Int without a default at its minimum, with one layer.
    assert hp.values["units_0"] == 8
    assert not hp.is_active("units_1")
