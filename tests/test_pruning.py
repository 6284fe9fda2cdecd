"""Median pruning for every algorithm: a trial worse than the completed trials' median at
the same epoch stops there, COMPLETED with the score it reached (pruned: true)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import sqlite_only
from tests.factories import (
    assert_problem,
    regression_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)

EPOCHS = 8
# 1e-7 learns nothing in 8 epochs: those trials are hopeless next to the others. Seed 1
# draws one after two completed trials (its peers): the order is the seeded oracle's.
HOPELESS = 1e-7
SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "choice", "values": [8, 16, 32]},
    "optimizer": {"type": "fixed", "value": "adam"},
    "learning_rate": {"type": "choice", "values": [0.05, 0.02, HOPELESS]},
    "batch_size": {"type": "fixed", "value": 16},
}


def _search(api: httpx.Client, start_worker, **spec: Any) -> tuple[dict[str, Any], list[dict]]:
    dataset = upload_ok(api, regression_frame(rows=300), "target value")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 6, "seed": 1},
        training={"epochs": EPOCHS},
        callbacks={"early_stopping": False},
        search_space=SPACE,
        **spec,
    )
    start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    return done, trials_of(api, job["id"])


@pytest.mark.slow
def test_median_pruning_stops_hopeless_trials(api: httpx.Client, start_worker) -> None:
    done, trials = _search(api, start_worker, pruning={"rule": "median", "min_epochs": 2})
    assert done["spec"]["pruning"] == {"rule": "median", "min_epochs": 2}
    pruned = [t for t in trials if t["pruned"]]
    hopeless = [t for t in pruned if t["hyperparameters"]["learning_rate"] == HOPELESS]
    assert hopeless, [
        (t["hyperparameters"]["learning_rate"], t["epochs_run"], t["score"], t["pruned"])
        for t in trials
    ]
    for trial in pruned:
        # Stopped, not failed: the oracle scored it with what it reached.
        assert trial["status"] == "COMPLETED"
        assert trial["score"] is not None
        assert 2 <= trial["epochs_run"] < EPOCHS
        assert not trial["stopped_early"]
    curve = api.get(f"/api/v1/jobs/{done['id']}/trials/{hopeless[0]['trial_id']}").json()
    assert len(curve["metrics"]) == hopeless[0]["epochs_run"]
    assert curve["pruned"] is True
    # The trials it was judged against ran every epoch.
    assert sum(t["epochs_run"] == EPOCHS for t in trials) >= 2


@pytest.mark.slow
@sqlite_only  # the control; the rule's SQL read runs on both in the test above
def test_without_pruning_every_trial_runs_its_epochs(api: httpx.Client, start_worker) -> None:
    done, trials = _search(api, start_worker, pruning=None)
    assert done["spec"]["pruning"] is None
    assert len(trials) == 6
    assert not any(t["pruned"] for t in trials)
    assert all(t["epochs_run"] == EPOCHS for t in trials)


# 240 rows, one validation split: 192 a fit, batches of up to 32, so 6 steps an epoch; the
# pruner judges from the epoch that makes 60 steps (app.search.training_length).
DERIVED = {"rule": "median", "min_epochs": 10}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("random_search", DERIVED),
        ("bayesian", DERIVED),
        ("grid", DERIVED),
        ("hyperband", None),  # it prunes by its brackets
    ],
)
def test_pruning_is_on_by_default_except_for_hyperband(
    api: httpx.Client, algorithm: str, expected: dict[str, Any] | None
) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    job = submit(api, dataset["id"], tuner={"algorithm": algorithm, "max_trials": 2})
    assert job["spec"]["pruning"] == expected
    assert job["spec"]["derivation"]["steps_per_epoch"] == 6


def test_pruning_can_be_asked_of_hyperband_and_turned_off_elsewhere(api: httpx.Client) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    on = submit(api, dataset["id"], pruning={"min_epochs": 1})
    assert on["spec"]["pruning"] == {"rule": "median", "min_epochs": 1}
    off = submit(api, dataset["id"], tuner={"algorithm": "bayesian"}, pruning=None)
    assert off["spec"]["pruning"] is None


@pytest.mark.parametrize(
    ("pruning", "field"),
    [
        ({"rule": "median", "min_epochs": 0}, "min_epochs"),
        ({"rule": "median", "min_epochs": -3}, "min_epochs"),
        ({"rule": "percentile"}, "rule"),
        ({"rule": "median", "patience": 2}, "patience"),
        ("median", "pruning"),
    ],
)
def test_bad_pruning_is_a_422_naming_the_field(api: httpx.Client, pruning: Any, field: str) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    response = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"], "pruning": pruning})
    assert_problem(response, 422, field)
