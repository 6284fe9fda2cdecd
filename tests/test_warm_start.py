"""Warm starts: a job tries the best configurations of earlier jobs first (those that fit
its search space), then its algorithm carries on; "auto" finds the earlier jobs itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import keras_tuner as kt
import pytest
from sqlalchemy import Engine, update

from app.search.search_space import effective_search_space
from app.search.warm_start_resolution import WarmStartConfiguration, fit_to_space
from app.settings import Settings
from app.store.models import Job, JobStatus, Trial
from app.store.unit_of_work import write_session
from tests.conftest import LiveServer, sqlite_only
from tests.factories import (
    assert_problem,
    csv_bytes,
    noisy_labels_frame,
    regression_frame,
    submit,
    trials_of,
    upload,
    upload_ok,
    wait_for_job,
)
from tuner_jobs.search.hyperparameters import build_hyperparameters
from tuner_jobs.search.warm_start import install, warm_start_origin

KEY_A = "key-a-0c5e2f7a9b1d4836"
KEY_B = "key-b-7d2a4c6e8f0b1359"
# A configuration of the default search space on 3 to 8 input features (units 4 to 16).
BASE = {
    "num_layers": 1,
    "units_0": 8,
    "activation": "tanh",
    "dropout": 0.1,
    "kernel_initializer": "he_normal",
    "optimizer": "adam",
    "learning_rate": 0.005,
    # Within the batch sizes the tables below get (their rows leave batches of 32 at most).
    "batch_size": 32,
    "l2": 0.0,
    "batch_norm": False,
}


def config(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def finish(engine: Engine, job_id: str, trials: list[tuple[float, dict[str, Any]]]) -> None:
    """Make the job a succeeded search with these (score, hyperparameters) trials."""
    with write_session(engine) as session:
        for index, (score, hyperparameters) in enumerate(trials):
            session.add(
                Trial(
                    job_id=job_id,
                    trial_id=f"{index:02d}",
                    status="COMPLETED",
                    hyperparameters=hyperparameters,
                    score=score,
                    epochs_run=1,
                )
            )
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.SUCCEEDED))


@contextmanager
def keyed_api(settings: Settings, key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {key}"}
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, headers=headers) as client:
        yield client


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": f"{KEY_A}, {KEY_B}"})


# --- Resolution at submission -------------------------------------------------------------


def test_the_best_configurations_are_stored_in_the_spec(api: httpx.Client, engine: Engine) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    source = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 4})
    best, second, worst = config(learning_rate=0.001), config(units_0=4), config(units_0=16)
    # val_loss is minimized: the lowest scores are the best.
    finish(engine, source["id"], [(0.9, worst), (0.2, best), (0.5, second)])
    job = submit(
        api, dataset["id"], warm_start={"jobs": [source["id"]], "top_k": 2}, tuner={"seed": 3}
    )
    warm = job["spec"]["warm_start"]
    assert warm["jobs"] == [source["id"]]
    assert warm["top_k"] == 2
    assert [c["hyperparameters"] for c in warm["configurations"]] == [best, second]
    assert [(c["job_id"], c["trial_id"], c["score"]) for c in warm["configurations"]] == [
        (source["id"], "01", 0.2),
        (source["id"], "02", 0.5),
    ]
    assert warm["skipped"]["count"] == 0
    # What a later GET answers is what was stored.
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["spec"]["warm_start"] == warm


def test_all_skipped_is_accepted_and_says_why(api: httpx.Client, engine: Engine) -> None:
    wide = upload_ok(api, regression_frame(features=40), "target value")  # units 32 to 256
    source = submit(api, wide["id"])
    finish(engine, source["id"], [(0.1, config(units_0=128)), (0.2, config(activation="selu"))])
    narrow = upload_ok(api, regression_frame(), "target value")
    job = submit(api, narrow["id"], warm_start={"jobs": [source["id"]]})
    warm = job["spec"]["warm_start"]
    assert warm["configurations"] == []
    assert warm["skipped"]["count"] == 2
    assert "units_0=128" in warm["skipped"]["reason"]
    assert {s["trial_id"]: s["reason"] for s in warm["skipped"]["trials"]} == {
        "00": "units_0=128 is outside [2, 16]",
        "01": "activation='selu' is not one of ['relu', 'tanh']",
    }


def test_auto_takes_the_owners_succeeded_jobs_on_the_same_data(
    keyed: Settings, engine: Engine
) -> None:
    frame = noisy_labels_frame(rows=80)
    with keyed_api(keyed, KEY_A) as a, keyed_api(keyed, KEY_B) as b:
        data = upload_ok(a, frame, "label")
        # The same file uploaded twice is the same dataset (200, the first one's id).
        repeated = upload(a, csv_bytes(frame), target="label")
        assert repeated.status_code == 200, repeated.text
        again = repeated.json()
        assert again["id"] == data["id"]
        other = upload_ok(a, noisy_labels_frame(rows=80, seed=1), "label")
        theirs = upload_ok(b, frame, "label")
        no_cv = {"cross_validation": None}
        earlier = submit(a, data["id"], training=no_cv)
        copy = submit(a, again["id"], training=no_cv)
        elsewhere = submit(a, other["id"], training=no_cv)
        failed = submit(a, data["id"], training=no_cv)
        foreign = submit(b, theirs["id"], training=no_cv)
        # val_accuracy is maximized: the highest scores are the best.
        finish(engine, earlier["id"], [(0.6, config(units_0=4)), (0.9, config(units_0=16))])
        finish(engine, copy["id"], [(0.7, config(learning_rate=0.002))])
        for job in (elsewhere, foreign):
            finish(engine, job["id"], [(0.99, config(learning_rate=0.0003))])
        finish(engine, failed["id"], [(0.95, config(learning_rate=0.0004))])
        with write_session(engine) as session:
            session.execute(update(Job).where(Job.id == failed["id"]).values(status="failed"))

        # Batches of 32 named: 80 rows would otherwise get only 16 (64 rows a fit).
        batches = {"batch_size": {"type": "choice", "values": [16, 32]}}
        job = submit(a, data["id"], training=no_cv, warm_start="auto", search_space=batches)
        warm = job["spec"]["warm_start"]
        assert warm["auto"] is True
        assert warm["jobs"] == [copy["id"], earlier["id"]]  # newest first
        # Round robin over the jobs, each one's best first.
        assert [c["hyperparameters"] for c in warm["configurations"]] == [
            config(learning_rate=0.002),
            config(units_0=16),
            config(units_0=4),
        ]

        # The other key's "auto" sees only its own job.
        mine = submit(b, theirs["id"], training=no_cv, warm_start="auto")
        assert mine["spec"]["warm_start"]["jobs"] == [foreign["id"]]


def test_auto_without_earlier_jobs_is_an_empty_warm_start(api: httpx.Client) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    job = submit(api, dataset["id"], warm_start="auto")
    assert job["spec"]["warm_start"]["jobs"] == []
    assert job["spec"]["warm_start"]["configurations"] == []


def test_another_keys_job_is_as_unknown_as_a_missing_one(keyed: Settings, engine: Engine) -> None:
    with keyed_api(keyed, KEY_A) as a, keyed_api(keyed, KEY_B) as b:
        theirs = upload_ok(b, regression_frame(), "target value")
        foreign = submit(b, theirs["id"])
        finish(engine, foreign["id"], [(0.1, config())])
        mine = upload_ok(a, regression_frame(), "target value")
        answers = {}
        for name, job_id in {"foreign": foreign["id"], "missing": "0" * 32}.items():
            response = a.post(
                "/api/v1/jobs",
                json={"dataset_id": mine["id"], "warm_start": {"jobs": [job_id]}},
            )
            body = assert_problem(response, 422, "warm_start.jobs", job_id)
            answers[name] = (body["title"], body["detail"].replace(job_id, "<id>"), body["errors"])
        assert answers["foreign"][:2] == answers["missing"][:2]
        assert answers["foreign"][2][0]["loc"] == ["body", "warm_start", "jobs", 0]
        # The owner itself may warm-start from it.
        ok = submit(b, theirs["id"], warm_start={"jobs": [foreign["id"]]})
        assert len(ok["spec"]["warm_start"]["configurations"]) == 1


@pytest.mark.parametrize(
    ("warm_start", "field"),
    [
        ({"jobs": ["x"], "top_k": 0}, "top_k"),
        ({"jobs": ["x"], "top_k": 101}, "top_k"),
        ({"jobs": []}, "jobs"),
        ({"jobs": ["x"], "configurations": []}, "configurations"),
        ({"top_k": 3}, "jobs"),
        ("everything", "warm_start"),
    ],
)
def test_bad_warm_start_is_a_422_naming_the_field(
    api: httpx.Client, warm_start: Any, field: str
) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    response = api.post(
        "/api/v1/jobs", json={"dataset_id": dataset["id"], "warm_start": warm_start}
    )
    body = assert_problem(response, 422, field)
    assert any("warm_start" in error["loc"] for error in body["errors"]), body


# --- Which configurations fit a search space -----------------------------------------------


SPACE = effective_search_space(
    {
        "num_layers": {"type": "int", "min": 1, "max": 2},
        "dropout": {"type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
        "batch_size": {"type": "pow2", "min": 16, "max": 64},
    },
    features=3,
)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (config(num_layers=3, units_1=8, units_2=8), "num_layers=3 is outside [1, 2]"),
        (config(units_0=6), "units_0=6 is not on the steps of 2 from 2"),
        (config(batch_size=128), "batch_size=128 is outside [16, 64]"),
        (config(dropout=0.25), "dropout=0.25 is not on the steps of 0.1 from 0.0"),
        (config(units_0=8.5), "units_0=8.5 is not a whole number"),
        (config(l2=0.01), "l2=0.01 is not the fixed value 0.0"),
        (config(batch_norm=0), "batch_norm=0 is not the fixed value False"),
        ({k: v for k, v in BASE.items() if k != "optimizer"}, "it has no value for optimizer"),
        (config(units_1=8), "this job's search space has no units_1"),
        (config(momentum=0.9), "this job's search space has no momentum"),
    ],
)
def test_a_configuration_outside_the_space_does_not_fit(
    values: dict[str, Any], problem: str
) -> None:
    assert fit_to_space(values, SPACE) == ({}, problem)


def test_a_fitting_configuration_takes_the_spaces_types() -> None:
    # A stepped float as another search drew it, an int stored as a float, and a
    # hyperparameter added since (fixed here) that the earlier trial lacks.
    values = config(dropout=0.30000000000000004, units_0=16.0, num_layers=2, units_1=2)
    del values["batch_norm"]
    fitted, problem = fit_to_space(values, SPACE)
    assert problem is None
    assert fitted["units_0"] == 16
    assert isinstance(fitted["units_0"], int)
    assert fitted["batch_norm"] is False
    assert fitted["units_1"] == 2


# --- The oracle hands the queue out first ---------------------------------------------------

QUEUE = [
    WarmStartConfiguration(job_id="A", trial_id="3", score=0.1, hyperparameters=config()),
    WarmStartConfiguration(
        job_id="B", trial_id="0", score=0.2, hyperparameters=config(units_0=4, dropout=0.0)
    ),
]
OBJECTIVE = kt.Objective("val_loss", "min")


def make_oracle(algorithm: str, directory: Path) -> Any:
    hyperparameters = build_hyperparameters(SPACE)
    common = {"objective": OBJECTIVE, "hyperparameters": hyperparameters, "seed": 1}
    oracle = {
        "random_search": lambda: kt.oracles.RandomSearchOracle(max_trials=5, **common),
        "hyperband": lambda: kt.oracles.HyperbandOracle(max_epochs=3, **common),
        # One initial point: past it, the queue must still go before the Gaussian process.
        "bayesian": lambda: kt.oracles.BayesianOptimizationOracle(
            max_trials=5, num_initial_points=1, **common
        ),
        "grid": lambda: kt.oracles.GridSearchOracle(max_trials=5, **common),
    }[algorithm]()
    oracle.verbose = 0
    oracle._set_project_dir(str(directory), "project")
    return oracle


def run_trial(oracle: Any, tuner_id: str = "tuner0", *, end: bool = True) -> Any:
    trial = oracle.create_trial(tuner_id)
    assert trial.status == "RUNNING"
    if end:
        oracle.update_trial(trial.trial_id, {"val_loss": 1.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return trial


def plain(trial: Any) -> dict[str, Any]:
    return {k: v for k, v in trial.hyperparameters.values.items() if k in BASE or "units" in k}


@pytest.mark.parametrize("algorithm", ["random_search", "hyperband", "bayesian", "grid"])
def test_every_oracle_hands_out_the_queue_first(algorithm: str, tmp_path: Path) -> None:
    oracle = make_oracle(algorithm, tmp_path)
    install(oracle, QUEUE)
    trials = [run_trial(oracle) for _ in range(4)]
    assert [plain(t) for t in trials[:2]] == [q.hyperparameters for q in QUEUE]
    assert [warm_start_origin(t.hyperparameters.values) for t in trials] == ["A", "B", None, None]
    # Then the algorithm's own, none of them a repeat (but for Hyperband's promotions,
    # which continue a trial with its configuration).
    drawn = [t for t in trials[2:] if "tuner/trial_id" not in t.hyperparameters.values]
    assert drawn
    assert all(plain(t) not in [q.hyperparameters for q in QUEUE] for t in drawn)


def test_parallel_tuners_get_different_queued_configurations(tmp_path: Path) -> None:
    oracle = make_oracle("random_search", tmp_path)
    install(oracle, QUEUE)
    first, second = (run_trial(oracle, f"tuner{i}", end=False) for i in range(2))
    assert [plain(first), plain(second)] == [q.hyperparameters for q in QUEUE]


@pytest.mark.parametrize("algorithm", ["random_search", "hyperband", "bayesian"])
def test_a_resumed_oracle_neither_repeats_nor_drops_a_configuration(
    algorithm: str, tmp_path: Path
) -> None:
    oracle = make_oracle(algorithm, tmp_path)
    install(oracle, QUEUE)
    run_trial(oracle)
    interrupted = run_trial(oracle, end=False)  # the process dies during B's trial

    resumed = make_oracle(algorithm, tmp_path)
    resumed.reload()
    install(resumed, QUEUE)
    rerun = run_trial(resumed)  # KerasTuner's retry queue: the interrupted trial again
    assert rerun.trial_id == interrupted.trial_id
    assert warm_start_origin(rerun.hyperparameters.values) == "B"
    after = run_trial(resumed)
    assert warm_start_origin(after.hyperparameters.values) is None
    assert plain(after) not in [q.hyperparameters for q in QUEUE]


# --- A real search -------------------------------------------------------------------------


@pytest.mark.slow
@sqlite_only  # the searches; both backends record and read origins in the tests above
def test_a_warm_started_search_first_tries_the_earlier_jobs_best(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, regression_frame(rows=120), "target value")
    quick = {
        "training": {"epochs": 2, "cross_validation": None},
        "callbacks": {"early_stopping": False},
        "search_space": {"num_layers": {"type": "fixed", "value": 1}},
        "parallel_trials": 1,
    }
    source = submit(
        api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 3}, **quick
    )
    start_worker()
    assert wait_for_job(api, source["id"], timeout=300)["status"] == "succeeded"
    ranked = sorted(
        (t for t in trials_of(api, source["id"]) if t["status"] == "COMPLETED"),
        key=lambda t: (t["score"], t["trial_id"]),
    )
    tuners = {
        "random_search": {"max_trials": 3},
        # Two rounds in its first bracket: the warm starts, then Hyperband's promotion.
        "hyperband": {"max_epochs": 2, "factor": 2, "max_trials": 3},
    }
    jobs = {
        algorithm: submit(
            api,
            dataset["id"],
            tuner={"algorithm": algorithm, "seed": 7, **tuner},
            warm_start={"jobs": [source["id"]], "top_k": 2},
            **quick,
        )
        for algorithm, tuner in tuners.items()
    }
    for algorithm, job in jobs.items():
        done = wait_for_job(api, job["id"], timeout=300)
        assert done["status"] == "succeeded", (algorithm, done)
        trials = sorted(trials_of(api, job["id"]), key=lambda t: t["trial_id"])
        assert [t["hyperparameters"] for t in trials[:2]] == [
            t["hyperparameters"] for t in ranked[:2]
        ], algorithm
        assert [(t["origin"], t["origin_job_id"]) for t in trials] == [
            ("warm_start", source["id"]),
            ("warm_start", source["id"]),
            ("search", None),
        ], algorithm
    # The source job's own trials were the algorithm's.
    assert {t["origin"] for t in trials_of(api, source["id"])} == {"search"}
