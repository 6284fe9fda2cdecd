"""tuner.algorithm `tpe` and `nsga2`: Optuna's samplers as KerasTuner oracles
(tuner_jobs.search.optuna_oracle), through real searches in worker processes."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, sqlite_only
from tests.factories import (
    customers_frame,
    search_process,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
    wait_mid_trial,
)

SPACE = {
    "num_layers": {"type": "int", "min": 1, "max": 2},
    "units": {"type": "pow2", "min": 8, "max": 64},
    "learning_rate": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
    "batch_size": {"type": "fixed", "value": 64},
}
QUICK = {
    "training": {"epochs": 2, "cross_validation": None},
    "callbacks": {"early_stopping": False},
    "parallel_trials": 1,
    "search_space": SPACE,
}


def _configurations(trials: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(t["hyperparameters"], sort_keys=True) for t in trials]


# --- the translation of KerasTuner's hyperparameters (no search) ---------------------------


def test_each_keras_tuner_hyperparameter_becomes_its_optuna_distribution() -> None:
    import keras_tuner as kt
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from tuner_jobs.search.optuna_oracle import _Param

    hp = kt.HyperParameters()
    declared = {
        "int_step": hp.Int("int_step", 1, 10, step=3),
        "int_log": hp.Int("int_log", 2, 64, sampling="log"),
        "pow2": hp.Int("pow2", 8, 64, step=2, sampling="log"),
        "float": hp.Float("float", 0.0, 0.5),
        "float_step": hp.Float("float_step", 0.0, 0.5, step=0.1),
        "float_log": hp.Float("float_log", 1e-4, 1e-1, sampling="log"),
        "choice": hp.Choice("choice", ["relu", "tanh"]),
        "boolean": hp.Boolean("boolean"),
        "fixed": hp.Fixed("fixed", 32),
    }
    params = {param.name: _Param(param) for param in hp.space}
    assert params["int_step"].distribution == IntDistribution(1, 10, step=3)
    assert params["int_log"].distribution == IntDistribution(2, 64, log=True)
    # A stepped log range has no Optuna twin: its index is searched (8, 16, 32, 64).
    assert params["pow2"].distribution == IntDistribution(0, 3)
    assert params["float"].distribution == FloatDistribution(0.0, 0.5)
    assert params["float_step"].distribution == FloatDistribution(0.0, 0.5, step=0.1)
    assert params["float_log"].distribution == FloatDistribution(1e-4, 1e-1, log=True)
    assert params["choice"].distribution == CategoricalDistribution(["relu", "tanh"])
    assert params["boolean"].distribution == CategoricalDistribution([False, True])
    assert params["fixed"].distribution is None

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set[Any]] = {name: set() for name in declared}
    for _ in range(60):
        trial = study.ask()
        for name, param in params.items():
            value = param.suggest(trial)
            # Every value is one KerasTuner itself could have drawn, and encodes back.
            assert param.decode(param.encode(value)) == value
            seen[name].add(value)
        study.tell(trial, 0.0)
    assert seen["pow2"] == {8, 16, 32, 64}
    assert seen["int_step"] <= {1, 4, 7, 10}
    assert seen["fixed"] == {32}
    assert seen["boolean"] == {False, True}
    assert all(1e-4 <= v <= 1e-1 for v in seen["float_log"])
    assert all(math.isclose(v * 10, round(v * 10)) for v in seen["float_step"])


# --- real searches -------------------------------------------------------------------------


@pytest.mark.slow
@sqlite_only  # the search runs the same on either backend; the suite's time is what matters here
def test_tpe_runs_after_a_warm_start_and_nsga2_runs(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(rows=240), "churned")
    source = submit(
        api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2}, **QUICK
    )
    start_worker()
    assert wait_for_job(api, source["id"], timeout=300)["status"] == "succeeded"
    best = api.get(f"/api/v1/jobs/{source['id']}/best").json()

    tpe = submit(
        api,
        dataset["id"],
        # The warm start's one configuration, then two of Optuna's own.
        tuner={"algorithm": "tpe", "max_trials": 3},
        warm_start={"jobs": [source["id"]], "top_k": 1},
        **QUICK,
    )
    nsga2 = submit(api, dataset["id"], tuner={"algorithm": "nsga2", "max_trials": 2}, **QUICK)
    for job in (tpe, nsga2):
        done = wait_for_job(api, job["id"], timeout=300)
        assert done["status"] == "succeeded", done
        trials = sorted(trials_of(api, job["id"]), key=lambda t: t["trial_id"])
        assert (
            len(trials) == job["progress"]["trials_planned"] == done["progress"]["trials_completed"]
        )
        assert all(t["status"] == "COMPLETED" and t["score"] is not None for t in trials)
        assert len(set(_configurations(trials))) == len(trials)  # no configuration twice
        assert all(t["objectives"] is None for t in trials)  # one objective: no vector
        assert api.get(f"/api/v1/jobs/{job['id']}/model").status_code == 200
        scores = [t["score"] for t in trials]
        assert done["best"]["score"] == max(scores)
    # The warm start's configuration came first, then Optuna's own.
    trials = sorted(trials_of(api, tpe["id"]), key=lambda t: t["trial_id"])
    assert trials[0]["hyperparameters"] == best["hyperparameters"]
    assert [t["origin"] for t in trials] == ["warm_start", "search", "search"]


@pytest.mark.slow
@sqlite_only
def test_the_same_seed_suggests_the_same_first_trials(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(rows=120), "churned")
    quick = {**QUICK, "training": {"epochs": 1, "cross_validation": None}}
    jobs = [
        submit(
            api, dataset["id"], tuner={"algorithm": "tpe", "max_trials": 2, "seed": seed}, **quick
        )
        for seed in (11, 11, 12)
    ]
    start_worker()
    runs = []
    for job in jobs:
        assert wait_for_job(api, job["id"], timeout=300)["status"] == "succeeded"
        trials = sorted(trials_of(api, job["id"]), key=lambda t: t["trial_id"])
        runs.append([t["hyperparameters"] for t in trials])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # the seed is what decides them


# --- resume --------------------------------------------------------------------------------

# As tests/test_resilience.py: epochs long enough to kill a search mid-trial.
EPOCHS = 5
ROWS = 2500
SLOW_SPACE = {
    "num_layers": {"type": "fixed", "value": 1},
    "units": {"type": "pow2", "min": 8, "max": 32},
    "learning_rate": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
    "batch_size": {"type": "fixed", "value": 8},
}


@pytest.mark.slow
@sqlite_only
def test_tpe_resumes_after_its_search_process_is_killed(
    api: httpx.Client, start_worker, settings, tmp_path: Path
) -> None:
    dataset = upload_ok(api, customers_frame(rows=ROWS), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "tpe", "max_trials": 4},
        training={"epochs": EPOCHS, "cross_validation": None},
        callbacks={"early_stopping": False},
        pruning=None,
        parallel_trials=1,
        search_space=SLOW_SPACE,
    )
    short_lease = make_settings(settings.database_url, settings.data_dir, lease_s=3.0)
    worker = start_worker(settings_override=short_lease)
    mid = wait_mid_trial(api, job["id"], epochs=EPOCHS, completed=2)
    running = mid["progress"]["current_trial"]
    before = {t["trial_id"]: t for t in trials_of(api, job["id"]) if t["status"] == "COMPLETED"}
    assert len(before) >= 2
    os.kill(search_process(worker.proc.pid), signal.SIGKILL)

    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    assert done["attempt"] == 2
    trials = trials_of(api, job["id"])
    assert sorted(t["trial_id"] for t in trials) == ["0", "1", "2", "3"]
    assert all(t["status"] == "COMPLETED" for t in trials)
    by_id = {t["trial_id"]: t for t in trials}
    # No finished trial lost: each kept as it was.
    for trial_id, trial in before.items():
        kept = by_id[trial_id]
        assert (kept["hyperparameters"], kept["score"], kept["started_at"]) == (
            trial["hyperparameters"],
            trial["score"],
            trial["started_at"],
        )
    # The interrupted trial reran with its own configuration, and no configuration was
    # asked twice (the rebuilt study did not redraw the first ones).
    assert by_id[running["trial_id"]]["hyperparameters"] == running["hyperparameters"]
    assert len(set(_configurations(trials))) == 4
    # The resumed search process gave its fresh study every trial that had finished.
    log = (tmp_path / "worker-0.log").read_text()
    assert f"optuna study rebuilt trials={len(before)} sampler=tpe" in log


# --- parallel trials ------------------------------------------------------------------------


@pytest.mark.slow
@sqlite_only
def test_tpe_serves_parallel_tuners_without_repeating_itself(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, customers_frame(rows=600), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "tpe", "max_trials": 4},
        objective=[{"name": "val_loss"}, {"name": "predict_latency_ms"}],
        training={"epochs": 3, "cross_validation": None},
        callbacks={"early_stopping": False},
        parallel_trials=2,
        search_space=SPACE,
    )
    for _ in range(2):
        start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    trials = trials_of(api, job["id"])
    assert sorted(t["trial_id"] for t in trials) == ["0", "1", "2", "3"]
    assert len(set(_configurations(trials))) == 4
    for trial in trials:
        # Measured by whichever tuner ran the trial, and reported to the chief's oracle.
        assert trial["objectives"]["predict_latency_ms"] > 0
        assert trial["objectives"]["val_loss"] == pytest.approx(trial["score"])
    front = api.get(f"/api/v1/jobs/{job['id']}/pareto").json()["items"]
    assert front
    assert done["best"]["trial_id"] in {item["trial_id"] for item in front}
