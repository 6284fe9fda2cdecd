"""End to end over HTTP with a real worker process running real KerasTuner searches."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import sqlite_only
from tests.factories import customers_frame, regression_frame, submit, upload_ok, wait_for_job

pytestmark = pytest.mark.slow

FAST_SPACE = {
    "num_layers": {"type": "int", "min": 1, "max": 2},
    "units": {"type": "pow2", "min": 8, "max": 16},
    "batch_size": {"type": "fixed", "value": 64},
}


def _trials(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/api/v1/jobs/{job_id}/trials", params={"limit": 1000}).json()
    assert page["total"] == len(page["items"])
    return page["items"]


def _check_finished_search(api: httpx.Client, job: dict[str, Any], metric: str) -> None:
    assert job["status"] == "succeeded", job
    trials = _trials(api, job["id"])
    assert len(trials) == job["progress"]["trials_planned"] == job["progress"]["trials_completed"]
    assert len({t["trial_id"] for t in trials}) == len(trials)
    for trial in trials:
        assert trial["status"] == "COMPLETED"
        assert trial["score"] is not None
        assert trial["duration_s"] > 0
        detail = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()
        assert len(detail["metrics"]) == trial["epochs_run"] >= 1
        for epoch in detail["metrics"]:
            assert {"loss", "val_loss", metric, f"val_{metric}", "learning_rate"} <= epoch.keys()
            assert epoch["learning_rate"] > 0
        # The per-layer units live in the trial's hyperparameters, one per active layer.
        hps = trial["hyperparameters"]
        assert {f"units_{i}" for i in range(hps["num_layers"])} <= hps.keys()
        assert f"units_{hps['num_layers']}" not in hps

    best = api.get(f"/api/v1/jobs/{job['id']}/best").json()
    scores = [t["score"] for t in trials]
    direction = job["spec"]["objective"]["direction"]
    assert best["score"] == (max(scores) if direction == "max" else min(scores))
    assert best["metrics"]
    assert job["best"]["trial_id"] == best["trial_id"]


# The algorithm is KerasTuner's: every one writes trials as any other does. Real searches
# on PostgreSQL: the progress test below, and the resilience, parallel and outage tests.
@sqlite_only
def test_all_four_algorithms_run_to_completion(
    api: httpx.Client, start_worker, tmp_path: Path
) -> None:
    classification = upload_ok(api, customers_frame(), "churned")
    regression = upload_ok(api, regression_frame(), "target value")
    jobs = {
        "random_search": submit(
            api,
            classification["id"],
            tuner={"algorithm": "random_search", "max_trials": 2},
            training={"epochs": 2},
            search_space=FAST_SPACE,
        ),
        "hyperband": submit(
            api,
            classification["id"],
            # KerasTuner's own smallest rung (1 epoch), not the one derived from the table.
            tuner={"algorithm": "hyperband", "max_epochs": 3, "min_epochs": 1, "factor": 3},
            search_space=FAST_SPACE,
            # Every trial of its plan, however slow the machine: without max_trials the
            # service would choose it a budget (docs/spec.md), which a loaded machine
            # spends after the first trial.
            max_runtime_s=None,
        ),
        "bayesian": submit(
            api,
            regression["id"],
            tuner={"algorithm": "bayesian", "max_trials": 2},
            training={"epochs": 2},
            search_space=FAST_SPACE,
        ),
        "grid": submit(
            api,
            classification["id"],
            tuner={"algorithm": "grid"},
            max_runtime_s=None,  # every point of the grid (as hyperband's above)
            training={"epochs": 2},
            search_space={
                "num_layers": {"type": "fixed", "value": 1},
                "units": {"type": "pow2", "min": 8, "max": 16},
                "activation": {"type": "choice", "values": ["relu", "tanh"]},
                "dropout": {"type": "fixed", "value": 0.0},
                "kernel_initializer": {"type": "fixed", "value": "glorot_uniform"},
                "optimizer": {"type": "fixed", "value": "adam"},
                "learning_rate": {"type": "fixed", "value": 0.01},
                "batch_size": {"type": "fixed", "value": 64},
            },
        ),
    }
    # Hyperband's plan comes from KerasTuner's bracket sizes (max_epochs 3, factor 3: 3+1+2);
    # a grid of 2 widths x 2 activations has 4 points.
    assert jobs["hyperband"]["progress"]["trials_planned"] == 6
    assert jobs["grid"]["progress"]["trials_planned"] == 4
    assert jobs["bayesian"]["spec"]["objective"] == {"name": "val_loss", "direction": "min"}
    start_worker()
    start_worker()  # two workers share the queue

    finished = {name: wait_for_job(api, job["id"], timeout=300) for name, job in jobs.items()}
    _check_finished_search(api, finished["random_search"], "accuracy")
    _check_finished_search(api, finished["hyperband"], "accuracy")
    _check_finished_search(api, finished["bayesian"], "mae")
    _check_finished_search(api, finished["grid"], "accuracy")

    grid_points = {
        (t["hyperparameters"]["units_0"], t["hyperparameters"]["activation"])
        for t in _trials(api, finished["grid"]["id"])
    }
    assert grid_points == {(8, "relu"), (8, "tanh"), (16, "relu"), (16, "tanh")}
    # Each end phase collected the baselines scored beside its search, off its critical path.
    log = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))
    for job in jobs.values():
        end = re.search(rf"end of search recorded: .* job_id={job['id']} .*", log)
        assert end is not None, job["id"]
        assert re.search(r"baselines_beside_s=\d", end.group(0)), end.group(0)
    # Hyperband trains later rounds for more epochs than the first.
    epochs = sorted(t["epochs_run"] for t in _trials(api, finished["hyperband"]["id"]))
    assert epochs[0] == 1
    assert epochs[-1] == 3


def test_progress_and_epochs_are_visible_while_the_search_runs(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, customers_frame(rows=400), "churned")
    job = submit(
        api,
        dataset["id"],
        # One trial: its epochs are what is watched while it trains.
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 15},
        callbacks={"early_stopping": False},
        search_space={**FAST_SPACE, "batch_size": {"type": "fixed", "value": 8}},
    )
    assert job["search_space"]["units"] == {"type": "pow2", "min": 8, "max": 16}
    start_worker()

    deadline = time.monotonic() + 120
    live = None
    while time.monotonic() < deadline:
        seen = api.get(f"/api/v1/jobs/{job['id']}").json()
        current = seen["progress"]["current_trial"]
        if seen["status"] == "running" and current and current["epochs_run"] >= 2:
            live = api.get(f"/api/v1/jobs/{job['id']}/trials/{current['trial_id']}").json()
            break
        assert seen["status"] in {"queued", "running"}, seen
        time.sleep(0.1)
    assert live is not None, "never saw a running trial with recorded epochs"
    # Epochs are in SQL while the trial is still training, not only at the end.
    assert live["status"] == "RUNNING"
    assert 2 <= len(live["metrics"]) < 15
    assert [m["epoch"] for m in live["metrics"]] == list(range(len(live["metrics"])))
    assert seen["progress"]["trials_planned"] == 1

    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded"
    assert all(t["epochs_run"] == 15 and not t["stopped_early"] for t in _trials(api, job["id"]))


@sqlite_only  # the defaults are resolved in Python; the other tests here run on both
def test_default_job_is_tpe_in_a_derived_budget_with_early_stopping_and_seeded_units(
    api: httpx.Client,
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(api, dataset["id"])
    spec, space = job["spec"], job["search_space"]
    assert job["status"] == "queued"
    # Neither a budget nor max_trials: a budget derived from the table, TPE within it.
    assert spec["derivation"]["budget_source"] == "auto"
    assert spec["max_runtime_s"] > 0
    assert spec["tuner"]["algorithm"] == "tpe"
    assert spec["pruning"]["rule"] == "median"
    assert spec["objective"] == {"name": "val_accuracy", "direction": "max"}
    assert spec["callbacks"]["early_stopping"]["monitor"] == "val_loss"
    low, high = dataset["units_range"]
    assert space["units"] == {
        "type": "pow2",
        "min": low,
        "max": high,
        "default": dataset["recommended_units"],
    }
    assert {
        "num_layers",
        "learning_rate",
        "activation",
        "dropout",
        "kernel_initializer",
        "optimizer",
        "batch_size",
    } <= space.keys()
    assert space["learning_rate"]["sampling"] == "log"
    assert space["kernel_initializer"]["default"] == "glorot_uniform"
