"""A list objective: a true multi-objective search (Optuna's samplers), its Pareto front
(GET /jobs/{id}/pareto), a model kept per front trial, and the bad input around it."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from app.search.pareto import best_of, dominates, non_dominated
from tests.conftest import sqlite_only
from tests.factories import (
    assert_problem,
    customers_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)

SPACE = {
    "num_layers": {"type": "int", "min": 1, "max": 2},
    "units": {"type": "pow2", "min": 8, "max": 64},
    "batch_size": {"type": "fixed", "value": 64},
}
TWO_OBJECTIVES = [
    {"name": "val_accuracy", "direction": "max"},
    {"name": "model_params", "direction": "min"},
]


# --- the pure front ------------------------------------------------------------------------


def test_the_front_keeps_exactly_the_non_dominated_points() -> None:
    points = {
        "a": [0.9, 500.0],  # best accuracy
        "b": [0.8, 100.0],  # smaller
        "c": [0.8, 300.0],  # dominated by b
        "d": [0.7, 100.0],  # dominated by b
        "e": [0.9, 500.0],  # equal to a: neither dominates the other
        "f": [None, 10.0],  # missing a value: on no front
        "g": [0.95, math.nan],
    }
    directions = ["max", "min"]
    assert non_dominated(points, directions) == ["a", "b", "e"]
    assert dominates([-0.8, 100.0], [-0.8, 300.0])
    assert not dominates([-0.9, 500.0], [-0.9, 500.0])


def test_best_is_the_front_trial_with_the_best_first_objective_ties_to_the_next() -> None:
    directions = ["max", "min"]
    # A tie on the first objective goes to the one better on the second, wherever it is.
    assert best_of({"0": [1.0, 900.0], "1": [1.0, 100.0], "2": [0.5, 10.0]}, directions) == "1"
    assert best_of({"0": [None, 1.0]}, directions) is None


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture
def dataset_id(api: httpx.Client) -> str:
    return str(upload_ok(api, customers_frame(rows=60), "churned")["id"])


@pytest.mark.parametrize(
    ("case", "body", "needles"),
    [
        (
            "a list with a single-objective algorithm",
            {"tuner": {"algorithm": "bayesian"}, "objective": TWO_OBJECTIVES},
            ("objective", "tpe", "nsga2", "bayesian"),
        ),
        (
            "an unknown metric",
            {
                "tuner": {"algorithm": "tpe"},
                "objective": [{"name": "val_accuracy"}, {"name": "val_f1"}],
            },
            ("objective.1.name", "unknown metric 'val_f1'", "model_params", "val_loss"),
        ),
        (
            "a duplicated objective",
            {
                "tuner": {"algorithm": "nsga2"},
                "objective": [{"name": "val_loss"}, {"name": "val_loss"}],
            },
            ("objective.1.name", "twice"),
        ),
        (
            "a direction other than min or max",
            {
                "tuner": {"algorithm": "tpe"},
                "objective": [
                    {"name": "val_accuracy"},
                    {"name": "model_params", "direction": "up"},
                ],
            },
            ("objective.1.direction", "'min'", "'max'"),
        ),
        (
            "a measured objective first",
            {"tuner": {"algorithm": "tpe"}, "objective": [{"name": "predict_latency_ms"}]},
            ("objective.0.name", "predict_latency_ms", "val_accuracy"),
        ),
        (
            "a measured objective with KerasTuner's own algorithm",
            {"tuner": {"algorithm": "random_search"}, "objective": {"name": "model_params"}},
            ("objective.name", "model_params"),
        ),
        ("an empty list", {"tuner": {"algorithm": "tpe"}, "objective": []}, ("objective",)),
        (
            "an unknown algorithm",
            {"tuner": {"algorithm": "cmaes"}},
            ("tuner.algorithm", "'tpe'", "'nsga2'", "'bayesian'", "'hyperband'"),
        ),
    ],
)
def test_bad_objectives_are_422_naming_the_field(
    api: httpx.Client, dataset_id: str, case: str, body: dict[str, Any], needles: tuple[str, ...]
) -> None:
    response = api.post("/api/v1/jobs", json={"dataset_id": dataset_id, **body})
    assert_problem(response, 422, *needles)


def test_a_single_objective_job_has_no_front(api: httpx.Client, dataset_id: str) -> None:
    job = submit(api, dataset_id, tuner={"algorithm": "tpe", "max_trials": 2})
    assert job["spec"]["objective"] == {"name": "val_accuracy", "direction": "max"}
    assert_problem(api.get(f"/api/v1/jobs/{job['id']}/pareto"), 409, "single objective")
    assert_problem(api.get("/api/v1/jobs/nope/pareto"), 404)


def test_a_list_objective_is_stored_resolved(api: httpx.Client, dataset_id: str) -> None:
    job = submit(
        api,
        dataset_id,
        tuner={"algorithm": "nsga2"},
        objective=[{"name": "val_loss"}, {"name": "predict_latency_ms"}],
    )
    assert job["spec"]["objective"] == [
        {"name": "val_loss", "direction": "min"},
        {"name": "predict_latency_ms", "direction": "min"},
    ]
    # No budget and no max_trials given: the derived budget, and as many trials as fit.
    assert job["spec"]["derivation"]["budget_source"] == "auto"
    assert job["spec"]["tuner"]["max_trials"] == 1000
    assert job["progress"]["trials_planned"] == 1000
    front = api.get(f"/api/v1/jobs/{job['id']}/pareto")
    assert front.status_code == 200, front.text
    assert front.json() == {"items": [], "objectives": job["spec"]["objective"]}


# --- a real two-objective search -------------------------------------------------------------


def _params(hps: dict[str, Any], features: int) -> int:
    """Trainable parameters of the dense network these hyperparameters build (one sigmoid
    output: two classes)."""
    width, total = features, 0
    for layer in range(hps["num_layers"]):
        units = hps[f"units_{layer}"]
        total += (width + 1) * units + (2 * units if hps.get("batch_norm") else 0)
        width = units
    return total + width + 1


def _values(objectives: dict[str, float], spec: list[dict[str, str]]) -> list[float]:
    return [
        -objectives[o["name"]] if o["direction"] == "max" else objectives[o["name"]] for o in spec
    ]


def _beats(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


@pytest.mark.slow
@sqlite_only  # the search runs the same on either backend; the suite's time is what matters here
def test_a_two_objective_search_returns_its_front_and_each_front_trial_predicts(
    api: httpx.Client, start_worker
) -> None:
    frame = customers_frame(rows=240)
    dataset = upload_ok(api, frame, "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "nsga2", "max_trials": 6, "seed": 7},
        objective=TWO_OBJECTIVES,
        training={"epochs": 2, "cross_validation": None},
        callbacks={"early_stopping": False},
        pruning=None,
        parallel_trials=1,
        search_space=SPACE,
    )
    start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done

    trials = trials_of(api, job["id"])
    assert len(trials) == 6
    for trial in trials:
        assert trial["status"] == "COMPLETED"
        objectives = trial["objectives"]
        assert set(objectives) == {"val_accuracy", "model_params"}
        # The first objective is KerasTuner's score; the second was measured on the network.
        assert objectives["val_accuracy"] == pytest.approx(trial["score"])
        assert objectives["model_params"] == _params(trial["hyperparameters"], dataset["features"])

    response = api.get(f"/api/v1/jobs/{job['id']}/pareto")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["objectives"] == TWO_OBJECTIVES
    front = body["items"]
    assert front
    spec = body["objectives"]
    on_front = {item["trial_id"] for item in front}
    by_id = {t["trial_id"]: t for t in trials}
    for item in front:
        assert item["objectives"] == by_id[item["trial_id"]]["objectives"]
        assert item["hyperparameters"] == by_id[item["trial_id"]]["hyperparameters"]
        # No trial on the front dominates another...
        for other in front:
            assert not _beats(_values(other["objectives"], spec), _values(item["objectives"], spec))
    # ... and every trial left off it is dominated by one on it.
    for trial in trials:
        if trial["trial_id"] not in on_front:
            mine = _values(trial["objectives"], spec)
            assert any(_beats(_values(i["objectives"], spec), mine) for i in front), trial

    # The job's best: the front trial with the best first objective (a tie: fewest params).
    best = min(front, key=lambda item: _values(item["objectives"], spec))
    assert done["best"]["trial_id"] == best["trial_id"]
    assert api.get(f"/api/v1/jobs/{job['id']}/best").json()["trial_id"] == best["trial_id"]

    rows = frame.drop(columns=["churned"]).head(3).astype(object)
    rows = [{k: (None if v != v else v) for k, v in row.items()} for row in rows.to_dict("records")]
    for item in front:
        model = api.get(f"/api/v1/jobs/{job['id']}/trials/{item['trial_id']}/model")
        assert model.status_code == 200, model.text
        assert len(model.content) > 1000
        predicted = api.post(
            f"/api/v1/jobs/{job['id']}/predict",
            params={"trial_id": item["trial_id"]},
            json={"rows": rows},
        )
        assert predicted.status_code == 200, predicted.text
        predictions = predicted.json()["predictions"]
        assert len(predictions) == 3
        assert all(p["label"] in ("yes", "no") for p in predictions)
    # A trial off the front kept no model.
    for trial_id in set(by_id) - on_front:
        assert_problem(api.get(f"/api/v1/jobs/{job['id']}/trials/{trial_id}/model"), 404, "pareto")
        assert_problem(
            api.post(
                f"/api/v1/jobs/{job['id']}/predict",
                params={"trial_id": trial_id},
                json={"rows": rows},
            ),
            404,
        )
    assert_problem(api.get(f"/api/v1/jobs/{job['id']}/trials/99/model"), 404)
