"""What a trial does while it trains: EarlyStopping ends stalled trials; cancel stops a search."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import sqlite_only
from tests.factories import assert_problem, customers_frame, submit, upload_ok, wait_for_job

pytestmark = pytest.mark.slow

# One model, so every trial trains the same way; only the learning rate matters here.
STILL_SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "fixed", "value": 8},
    "dropout": {"type": "fixed", "value": 0.0},
    "batch_size": {"type": "fixed", "value": 32},
    "optimizer": {"type": "fixed", "value": "sgd"},
    # So small that val_loss cannot move by min_delta: it stalls from the first epoch.
    "learning_rate": {"type": "fixed", "value": 1e-7},
}


@sqlite_only
def test_early_stopping_ends_a_stalled_trial(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    stalled = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 30},
        callbacks={"early_stopping": {"monitor": "val_loss", "patience": 2, "min_delta": 0.01}},
        search_space=STILL_SPACE,
    )
    control = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 5},
        callbacks={"early_stopping": False},
        search_space=STILL_SPACE,
    )
    assert control["spec"]["callbacks"]["early_stopping"] is None
    start_worker()

    wait_for_job(api, stalled["id"])
    (trial,) = api.get(f"/api/v1/jobs/{stalled['id']}/trials").json()["items"]
    assert trial["stopped_early"] is True
    # The first epoch sets the best val_loss; two more without improvement end it.
    assert trial["epochs_run"] == 3
    curve = api.get(f"/api/v1/jobs/{stalled['id']}/trials/{trial['trial_id']}").json()["metrics"]
    assert len(curve) == 3

    wait_for_job(api, control["id"])
    (trial,) = api.get(f"/api/v1/jobs/{control['id']}/trials").json()["items"]
    assert trial["stopped_early"] is False
    assert trial["epochs_run"] == 5


def test_cancel_stops_a_running_search_and_keeps_its_trials(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, customers_frame(rows=600), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 50},
        training={"epochs": 500},
        callbacks={"early_stopping": False},
        search_space={**STILL_SPACE, "batch_size": {"type": "fixed", "value": 8}},
    )
    start_worker()
    deadline = time.monotonic() + 120
    while True:
        seen = api.get(f"/api/v1/jobs/{job['id']}").json()
        current = seen["progress"]["current_trial"]
        if current and current["epochs_run"] >= 1:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)

    response = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    done = wait_for_job(api, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    (trial,) = api.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
    assert trial["status"] == "STOPPED"
    assert 1 <= trial["epochs_run"] < 500
    assert len(api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()["metrics"])
    assert_problem(api.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "finished")


def test_cancel_of_a_queued_job_is_immediate(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(api, dataset["id"])
    response = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"]
