"""A time budget is a normal ending: a job that hits max_runtime_s with a COMPLETED trial
succeeds (stop_reason time_budget) and predicts; one with none fails (stop_reason failed)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import sqlite_only
from tests.factories import customers_frame, submit, trials_of, upload_ok, wait_for_job

pytestmark = [pytest.mark.slow, sqlite_only]

SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 32},
    "batch_size": {"type": "fixed", "value": 8},
}
ROWS = [{"age (years)": 40, "income/yr": 50000.0, "home city": "Porto", "plan": "pro"}]


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
        # Counted from the claim, TensorFlow's start-up included (a loaded machine runs the
        # first two-fold trial in well under this).
        max_runtime_s=20,
    )
    assert (job["spec"]["tuner"]["algorithm"], job["spec"]["tuner"]["max_trials"]) == ("tpe", 1000)
    start_worker()
    done = wait_for_job(api, job["id"], timeout=180)
    assert done["status"] == "succeeded", done
    assert done["stop_reason"] == "time_budget"
    assert done["error"] is None
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


def test_a_cancelled_job_says_so(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2})
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").status_code in (200, 202)
    done = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert done["status"] == "cancelled"
    assert done["stop_reason"] == "cancelled"
