"""A time budget is a normal ending: a job that hits max_runtime_s with a COMPLETED trial
succeeds (stop_reason time_budget) and predicts; one with none fails (stop_reason failed)."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from tests.conftest import sqlite_only
from tests.factories import (
    POLL_S,
    assert_problem,
    customers_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)

pytestmark = [pytest.mark.slow, sqlite_only]

SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 32},
    "batch_size": {"type": "fixed", "value": 8},
}
ROWS = [{"age (years)": 40, "income/yr": 50000.0, "home city": "Porto", "plan": "pro"}]


def wait_for_completed_trial(api: httpx.Client, job_id: str, timeout: float = 240) -> None:
    """Until the job has a COMPLETED trial: the test's budget is measured from it, not from
    a wall clock, so a loaded machine (slow start, slow first trial) changes nothing."""
    deadline = time.monotonic() + timeout
    while api.get(f"/api/v1/jobs/{job_id}").json()["progress"]["trials_completed"] < 1:
        assert time.monotonic() < deadline, f"no trial of {job_id} completed in {timeout}s"
        time.sleep(POLL_S)


def test_a_time_budget_ends_the_job_succeeded_and_it_predicts(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, customers_frame(rows=600), "churned")
    job = submit(
        api,
        dataset["id"],
        # No algorithm and no max_trials: under a budget the default is TPE, planned for
        # as many trials as the budget allows (app.search.spec.resolve_algorithm).
        training={"epochs": 2, "test_split": 0.2, "cross_validation": {"folds": 2}},
        callbacks={"early_stopping": False},
        search_space=SPACE,
        max_runtime_s=3600,
    )
    assert (job["spec"]["tuner"]["algorithm"], job["spec"]["tuner"]["max_trials"]) == ("tpe", 1000)
    start_worker()
    wait_for_completed_trial(api, job["id"])
    # The budget, changed while the job runs, to one already spent: the search stops at
    # the next heartbeat and ends as a budgeted search does.
    changed = api.patch(f"/api/v1/jobs/{job['id']}", json={"max_runtime_s": 1})
    assert changed.status_code == 200, changed.text
    assert changed.json()["spec"]["max_runtime_s"] == 1
    assert changed.json()["spec"]["derivation"]["budget_source"] == "user"
    done = wait_for_job(api, job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    assert done["stop_reason"] == "time_budget"
    assert done["error"] is None
    assert done["progress"]["remaining_s"] == 0
    trials = trials_of(api, job["id"])
    completed = [t for t in trials if t["status"] == "COMPLETED"]
    assert completed
    assert {t["status"] for t in trials} <= {"COMPLETED", "STOPPED"}
    # Progress counts COMPLETED trials only, not the one the budget interrupted.
    assert done["progress"]["trials_completed"] == len(completed) < 1000
    assert done["best"]["trial_id"] in {t["trial_id"] for t in completed}
    # The best so far stays readable, as does its model.
    assert api.get(f"/api/v1/jobs/{job['id']}/best").status_code == 200
    assert api.get(f"/api/v1/jobs/{job['id']}/model").status_code == 200
    served = api.post(f"/api/v1/jobs/{job['id']}/predict", json={"rows": ROWS})
    assert served.status_code == 200, served.text
    assert len(served.json()["predictions"]) == 1
    # It ended as a finished search does: refit on every training row, scored on the
    # held-out rows, beside the baselines on the same folds.
    assert done["best"]["test_metrics"]["refit"]["rows"] == 480  # 600 rows less the 120 held out
    assert 0 <= done["best"]["test_score"] <= 1
    assert len(done["baselines"]["linear"]["fold_scores"]) == 2


def test_the_end_phase_runs_inside_the_budget(api: httpx.Client, start_worker) -> None:
    """The budget is the whole job's: the search stops early enough for the refit, the
    baselines and the exports to end near it, not a stop grace past it."""
    dataset = upload_ok(api, customers_frame(rows=300), "churned")
    job = submit(api, dataset["id"], search_space=SPACE, max_runtime_s=3600)
    derivation = job["spec"]["derivation"]
    assert derivation["budget_source"] == "user"
    assert 0 < derivation["end_phase_s"] < 3600
    # Epochs and patience came from the table: 300 rows, 5 folds, batch 8.
    assert derivation["steps_per_epoch"] == 30
    assert {"training.epochs", "callbacks.early_stopping.patience"} <= set(derivation["derived"])
    start_worker()
    # The budget measured from the job's own first completed trial, not a wall clock: 20 s
    # past it. The end phase keeps a fifth of the budget, 10 s to 180 s, at most half (10 s
    # on an idle machine, more where a loaded one took long to its first trial).
    wait_for_completed_trial(api, job["id"])
    budget = api.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["elapsed_s"] + 20
    changed = api.patch(f"/api/v1/jobs/{job['id']}", json={"max_runtime_s": budget})
    kept = min(180, max(10, budget / 5), budget / 2)
    assert changed.json()["spec"]["derivation"]["end_phase_s"] == pytest.approx(kept, abs=0.05)
    done = wait_for_job(api, job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    assert done["stop_reason"] == "time_budget"
    assert done["baselines"]["linear"]["score"] > 0
    # The derived epoch cap leaves room to reach the plateau: the winner's best epoch (the
    # mean of its folds') comes more than a patience before it, so early stopping, not the
    # cap, is what ends its folds. (Which trial wins under a budget depends on the machine's
    # speed, and one slow fold of it may still reach the cap: its best epoch is the check.)
    best = api.get(f"/api/v1/jobs/{job['id']}/best").json()
    cap = job["spec"]["training"]["epochs"]
    patience = job["spec"]["callbacks"]["early_stopping"]["patience"]
    assert best["best_epoch"] + patience < cap, (best["best_epoch"], patience, cap)
    took = (
        datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    ).total_seconds()
    # Not a speed test: the margin is for a loaded machine's end phase. Before the end phase
    # was kept inside the budget, a 30 s job ended after the 60 s stop grace.
    assert took < budget + 20, took


def test_a_budget_too_small_for_any_trial_fails(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3},
        training={"epochs": 50},
        search_space=SPACE,
        max_runtime_s=0.01,
    )
    start_worker()
    done = wait_for_job(api, job["id"], timeout=180)
    assert done["status"] == "failed"
    assert done["stop_reason"] == "failed"
    assert "max_runtime_s" in done["error"]
    assert done["progress"]["trials_completed"] == 0


def test_a_search_that_runs_out_of_trials_ends_completed(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2},
        training={"epochs": 2},
        search_space=SPACE,
        max_runtime_s=600,
    )
    start_worker()
    done = wait_for_job(api, job["id"], timeout=180)
    assert done["status"] == "succeeded"
    assert done["stop_reason"] == "completed"
    assert done["progress"]["trials_completed"] == 2


def test_a_finished_jobs_budget_cannot_change_and_a_bad_one_is_refused(
    api: httpx.Client,
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2})
    for bad in (0, -5, "soon", 10**9):
        assert_problem(
            api.patch(f"/api/v1/jobs/{job['id']}", json={"max_runtime_s": bad}),
            422,
            "max_runtime_s",
        )
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code in (200, 202)
    assert_problem(
        api.patch(f"/api/v1/jobs/{job['id']}", json={"max_runtime_s": 60}), 409, "cancelled"
    )
    # A rename still works on a finished job, and leaves the spec as it was.
    renamed = api.patch(f"/api/v1/jobs/{job['id']}", json={"name": "kept"}).json()
    assert renamed["name"] == "kept"
    assert renamed["spec"] == job["spec"]


def test_a_cancelled_job_says_so(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2})
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code in (200, 202)
    done = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert done["status"] == "cancelled"
    assert done["stop_reason"] == "cancelled"
