"""The ensemble of a search's trials (training.ensemble): greedy selection on out-of-fold
predictions, one plain Keras model served as the job's model, the best trial kept."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import keras
import numpy as np
import pytest

from app.settings import Settings
from tests.conftest import sqlite_only
from tests.factories import (
    assert_problem,
    customers_frame,
    noisy_labels_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)
from tests.test_portable_models import ONNX, download, run_isolated
from tuner_jobs.search.ensemble import greedy_selection, metric_value, protocol_score

# --- Selection (no worker) ------------------------------------------------------------------


def _accuracy(y: np.ndarray):  # type: ignore[no-untyped-def]
    return lambda p: metric_value("val_accuracy", y, p, regression=False)


def test_selection_combines_models_that_err_on_different_rows() -> None:
    y = np.array([1, 1, 1, 0, 0, 0], dtype="float32")
    # Each is sure where it is right and unsure where wrong, each wrong on other rows: any
    # two of them averaged are right everywhere.
    a = np.array([[0.4], [0.4], [0.95], [0.05], [0.05], [0.05]])
    b = np.array([[0.95], [0.95], [0.4], [0.6], [0.05], [0.05]])
    c = np.array([[0.95], [0.95], [0.95], [0.05], [0.6], [0.6]])
    selection = greedy_selection([a, b, c], _accuracy(y), maximize=True, max_members=3)
    assert max(_accuracy(y)(p) for p in (a, b, c)) == pytest.approx(4 / 6)
    assert selection.score == 1.0
    # The first to reach it: a, the first of the tied best, then the first to complete it.
    assert selection.weights == {0: 0.5, 1: 0.5}
    alone = greedy_selection([a, b, c], _accuracy(y), maximize=True, max_members=1)
    assert alone.counts == {0: 1}


def test_selection_keeps_the_best_model_alone_when_nothing_improves_it() -> None:
    y = np.array([2.0, 4.0, 6.0])
    good, bad = np.array([[2.0], [4.0], [6.5]]), np.array([[9.0], [9.0], [9.0]])

    def mse(p: np.ndarray) -> float:
        return metric_value("val_loss", y, p, regression=True)

    selection = greedy_selection([good, bad], mse, maximize=False, max_members=5)
    assert selection.counts == {0: 1}  # the first round's pick: later rounds only got worse
    assert selection.score == pytest.approx(0.25 / 3)


def test_metrics_are_those_keras_computes() -> None:
    rng = np.random.default_rng(0)
    y2 = rng.integers(0, 2, 50).astype("float32")
    p2 = rng.uniform(0.01, 0.99, (50, 1)).astype("float32")
    y3 = rng.integers(0, 3, 50)
    p3 = rng.dirichlet([1, 1, 1], 50).astype("float32")
    yr = rng.normal(size=50).astype("float32")
    pr = rng.normal(size=(50, 1)).astype("float32")
    expected = {
        ("val_loss", "binary"): keras.losses.BinaryCrossentropy()(y2[:, None], p2),
        ("val_accuracy", "binary"): keras.metrics.binary_accuracy(y2[:, None], p2).numpy().mean(),
        ("val_loss", "softmax"): keras.losses.SparseCategoricalCrossentropy()(y3, p3),
        ("val_accuracy", "softmax"): np.mean(
            keras.metrics.sparse_categorical_accuracy(y3, p3).numpy()
        ),
        ("val_loss", "regression"): keras.losses.MeanSquaredError()(yr[:, None], pr),
        ("val_mae", "regression"): keras.losses.MeanAbsoluteError()(yr[:, None], pr),
    }
    data = {"binary": (y2, p2), "softmax": (y3, p3), "regression": (yr, pr)}
    for (objective, kind), value in expected.items():
        y, p = data[kind]
        got = metric_value(objective, y, p, regression=kind == "regression")
        assert got == pytest.approx(float(value), rel=1e-5), (objective, kind)
    # Over folds: the mean of each fold's value, as a trial's score is taken.
    parts = [np.arange(0, 20), np.arange(20, 50)]
    folds = protocol_score("val_loss", yr, pr, parts, regression=True)
    assert folds == pytest.approx(
        np.mean([np.mean((pr[rows, 0] - yr[rows]) ** 2) for rows in parts]), rel=1e-6
    )


# --- The spec ----------------------------------------------------------------------------------


@pytest.mark.parametrize("members", [1, 0, 51, -2])
def test_max_members_outside_two_to_fifty_is_a_422_naming_the_field(
    api: httpx.Client, members: int
) -> None:
    dataset_id = upload_ok(api, customers_frame(rows=60), "churned")["id"]
    response = api.post(
        "/api/v1/jobs",
        json={"dataset_id": dataset_id, "training": {"ensemble": {"max_members": members}}},
    )
    body = assert_problem(response, 422, "training.ensemble.max_members")
    assert any(e["loc"][-3:] == ["training", "ensemble", "max_members"] for e in body["errors"])


def test_the_ensemble_defaults_to_auto_and_can_be_off(api: httpx.Client) -> None:
    dataset_id = upload_ok(api, customers_frame(rows=60), "churned")["id"]
    for training, expected in (({}, "auto"), ({"ensemble": None}, None)):
        response = api.post("/api/v1/jobs", json={"dataset_id": dataset_id, "training": training})
        assert response.status_code == 202, response.text
        assert response.json()["spec"]["training"]["ensemble"] == expected
    response = api.post(
        "/api/v1/jobs", json={"dataset_id": dataset_id, "training": {"ensemble": "always"}}
    )
    assert_problem(response, 422, "training.ensemble")


# --- A search ---------------------------------------------------------------------------------

ROWS = [
    {f"x{i}": float(v) for i, v in enumerate(row)} for row in np.linspace(-2, 2, 20).reshape(4, 5)
]


@pytest.mark.slow
@sqlite_only
def test_a_cross_validated_job_serves_its_ensemble_and_keeps_its_best_trial(
    api: httpx.Client, start_worker, settings: Settings, tmp_path: Path
) -> None:
    dataset = upload_ok(api, noisy_labels_frame(rows=100, seed=3), "label")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3, "seed": 7},
        # The loss: averaging different models' probabilities lowers it, so the ensemble is
        # used (accuracy on 100 rows is too coarse to move reliably).
        objective={"name": "val_loss", "direction": "min"},
        training={
            "epochs": 3,
            "test_split": 0.2,
            "cross_validation": {"folds": 3},
            "ensemble": {"max_members": 3},
        },
        search_space={
            "num_layers": {"type": "fixed", "value": 1},
            "units": {"type": "pow2", "min": 4, "max": 32},
            "learning_rate": {"type": "float", "min": 1e-3, "max": 3e-2, "sampling": "log"},
            "batch_size": {"type": "fixed", "value": 16},
        },
        parallel_trials=1,
    )
    start_worker()
    done = wait_for_job(api, job["id"])
    assert done["status"] == "succeeded", done
    ensemble = done["ensemble"]
    best = done["best"]
    scores = {t["trial_id"]: t["score"] for t in trials_of(api, job["id"])}
    members = {m["trial_id"]: m["weight"] for m in ensemble["members"]}
    assert ensemble["used"] is True, ensemble
    assert 2 <= len(members) <= 3
    assert set(members) <= set(scores)
    assert sum(members.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(w > 0 for w in members.values())
    # Out-of-fold, on the same folds: strictly better than its best member alone, whose
    # score computed from its predictions is its fold mean (up to the weights' L2 penalty).
    assert ensemble["score"] < ensemble["trial_score"]
    assert ensemble["trial_score"] == pytest.approx(best["score"], rel=0.05)
    assert ensemble["members_are"] == "refit"
    assert ensemble["test_score"] is not None
    assert done["best"]["test_score"] is not None  # the best trial's, as before

    base = f"/api/v1/jobs/{job['id']}"
    card = api.get(f"{base}/model_card").json()
    assert card["model"] == "ensemble"
    assert card["trial_id"] is None
    assert {m["trial_id"]: m["weight"] for m in card["ensemble"]["members"]} == members
    assert card["scores"]["validation"] == pytest.approx(ensemble["score"])
    assert card["scores"]["baselines"] == done["baselines"]
    markdown = api.get(f"{base}/model_card?format=md").text
    assert "## Ensemble" in markdown
    trial_card = api.get(f"{base}/model_card?source=trial").json()
    assert trial_card["trial_id"] == best["trial_id"]
    assert trial_card["scores"]["test"]["score"] == pytest.approx(best["test_score"])

    # The ensemble: one plain Keras model, loaded where this service is not installed.
    work = tmp_path / "elsewhere"
    work.mkdir()
    download(api, f"{base}/model?format=keras", work / "best.keras")
    download(api, f"{base}/model?format=onnx", work / "best.onnx")
    (work / "model_card.json").write_text(json.dumps(card))
    (work / "rows.json").write_text(json.dumps(ROWS))
    served = api.post(f"{base}/predict", json={"rows": ROWS})
    assert served.status_code == 200, served.text
    positive = str(card["dataset"]["classes"][1])
    expected = [p["probabilities"][positive] for p in served.json()["predictions"]]
    keras_side = run_isolated(KERAS_ONLY, work)
    onnx_side = run_isolated(ONNX, work)
    assert [o[0] for o in keras_side["keras"]] == pytest.approx(expected, abs=1e-5)
    assert [o[0] for o in onnx_side["onnx"]] == pytest.approx(expected, abs=1e-5)
    assert keras_side["layers"] == len(members)  # each member's refit network

    # ?source=trial: the best single trial, in every format; its predictions differ.
    download(api, f"{base}/model?source=trial", work / "trial.keras")
    single = api.post(f"{base}/predict?source=trial", json={"rows": ROWS}).json()
    by_id = api.post(f"{base}/predict?trial_id={best['trial_id']}", json={"rows": ROWS}).json()
    assert single == by_id
    assert single != served.json()
    for model_format in ("saved_model", "onnx"):
        response = api.get(f"{base}/model?source=trial&format={model_format}")
        assert response.status_code == 200, model_format
        # Named apart from the job's model, so both can sit in one folder.
        assert f"{job['id']}-trial-" in response.headers["content-disposition"]
    assert (work / "trial.keras").read_bytes() != (work / "best.keras").read_bytes()
    assert_problem(api.get(f"{base}/model?source=best"), 422, "source")


KERAS_ONLY = """
import keras
model = keras.saving.load_model("best.keras", safe_mode=True)
ensemble = model.get_layer("ensemble")
out = keras.ops.convert_to_numpy(model(encode(rows, "keras_input")))
networks = [layer for layer in ensemble.layers if isinstance(layer, keras.Model)]
print(json.dumps({"keras": out.astype(float).tolist(), "layers": len(networks)}))
"""


@pytest.mark.slow
@sqlite_only
def test_a_one_split_job_ensembles_its_trials_networks(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, noisy_labels_frame(rows=120, seed=4), "label")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3, "seed": 5},
        objective={"name": "val_loss", "direction": "min"},
        training={"epochs": 3, "ensemble": "auto"},
        search_space={
            "num_layers": {"type": "fixed", "value": 1},
            "units": {"type": "pow2", "min": 4, "max": 32},
            "learning_rate": {"type": "float", "min": 1e-3, "max": 3e-2, "sampling": "log"},
            "batch_size": {"type": "fixed", "value": 16},
        },
        parallel_trials=1,
    )
    start_worker()
    done = wait_for_job(api, job["id"])
    assert done["status"] == "succeeded", done
    ensemble, best = done["ensemble"], done["best"]
    assert ensemble["used"] is True, ensemble
    assert ensemble["members_are"] == "trial_models"
    assert len(ensemble["members"]) >= 2
    # The validation rows' loss: strictly below the best trial's, its own computed alike.
    assert ensemble["score"] < ensemble["trial_score"]
    assert ensemble["trial_score"] == pytest.approx(best["score"], rel=1e-4)
    assert ensemble["test_score"] is None  # no test rows

    base = f"/api/v1/jobs/{job['id']}"
    served = api.post(f"{base}/predict", json={"rows": ROWS}).json()
    single = api.post(f"{base}/predict?source=trial", json={"rows": ROWS}).json()
    assert served != single
    trial_file = api.get(f"{base}/trials/{best['trial_id']}/model")
    assert trial_file.status_code == 200
    assert trial_file.content == api.get(f"{base}/model?source=trial").content
    assert trial_file.content != api.get(f"{base}/model").content
