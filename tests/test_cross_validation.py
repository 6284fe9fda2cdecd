"""Cross-validation (training.cross_validation): stratified folds, a trial scored by the
mean over its folds, the best configuration refit on every training row and served."""

from __future__ import annotations

import io
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pandas as pd
import pytest

from app.settings import Settings
from app.store.job_files import BEST_MODEL_FILE, KERAS_TUNER_PROJECT, job_dir
from tests.conftest import sqlite_only
from tests.factories import (
    FINISHED,
    ONE_LAYER_SPACE,
    Stalled,
    assert_problem,
    csv_bytes,
    customers_frame,
    regression_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)
from tuner_jobs.search.split import fold_indices, split_dataset


def as_uploaded(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(csv_bytes(frame)))


# --- The folds (no worker) --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_folds_are_stratified_and_cover_every_training_row_once(seed: int) -> None:
    labels = np.repeat([0, 1, 2], [90, 40, 20])
    np.random.default_rng(seed).shuffle(labels)
    split = split_dataset(150, validation_split=0.2, test_split=0.2, seed=seed, labels=labels)
    with_folds = split_dataset(
        150, validation_split=0.2, test_split=0.2, seed=seed, labels=labels, folds=5
    )
    # The test rows are the ones a single-split job holds out: folds never see them.
    assert sorted(with_folds.test.tolist()) == sorted(split.test.tolist())
    assert len(with_folds.validation) == 0
    held = np.concatenate([validation for _, validation in with_folds.folds])
    assert sorted(held.tolist()) == sorted(with_folds.train.tolist())  # each row once
    assert not set(held) & set(with_folds.test)
    totals = Counter(labels[with_folds.train].tolist())
    for train, validation in with_folds.folds:
        assert not set(train) & set(validation)
        assert sorted([*train, *validation]) == sorted(with_folds.train.tolist())
        counts = Counter(labels[validation].tolist())
        for label, total in totals.items():
            # Stratified: each class's share of a fold within one row of its share overall.
            assert abs(counts[label] - total / 5) <= 1, (label, counts, totals)


def test_folds_without_labels_are_plain_seeded_folds() -> None:
    rows = np.arange(10, 30)
    a = fold_indices(rows, 4, seed=7)
    assert [len(v) for _, v in a] == [5, 5, 5, 5]
    assert all(
        np.array_equal(x[1], y[1]) for x, y in zip(a, fold_indices(rows, 4, seed=7), strict=True)
    )
    assert sorted(np.concatenate([v for _, v in a]).tolist()) == rows.tolist()
    with pytest.raises(ValueError, match="folds"):
        fold_indices(rows[:3], 4, seed=7)


# --- The resolved spec and bad input (no worker) ----------------------------------------------


def _post(api: httpx.Client, dataset_id: str, **spec: Any) -> httpx.Response:
    # Not factories.submit: it turns cross-validation off unless told otherwise.
    return api.post("/api/v1/jobs", json={"dataset_id": dataset_id, **spec})


def test_auto_is_five_folds_below_a_thousand_training_rows(api: httpx.Client) -> None:
    small = upload_ok(api, customers_frame(rows=300), "churned")["id"]
    large = upload_ok(api, regression_frame(rows=1100), "target value")["id"]
    cases = [
        (small, {}, {"folds": 5}),
        (small, {"cross_validation": "auto"}, {"folds": 5}),
        (small, {"cross_validation": None}, None),
        (small, {"cross_validation": {"folds": 3}}, {"folds": 3}),
        (large, {}, None),
        # 1,100 rows, 220 of them test rows: 880 training rows, below the threshold.
        (large, {"test_split": 0.2}, {"folds": 5}),
    ]
    for dataset_id, training, expected in cases:
        response = _post(api, dataset_id, training=training)
        assert response.status_code == 202, response.text
        assert response.json()["spec"]["training"]["cross_validation"] == expected, training


def test_auto_takes_fewer_folds_when_a_class_is_too_rare(api: httpx.Client) -> None:
    frame = customers_frame(rows=60)
    frame["churned"] = ["rare"] * 3 + ["common"] * 57
    dataset_id = upload_ok(api, frame, "churned")["id"]
    response = _post(api, dataset_id)
    assert response.status_code == 202, response.text
    assert response.json()["spec"]["training"]["cross_validation"] == {"folds": 3}


def _rejects_folds(response: httpx.Response, *needles: str) -> None:
    body = assert_problem(response, 422, "training.cross_validation.folds", *needles)
    assert any(
        error["loc"][-3:] == ["training", "cross_validation", "folds"] for error in body["errors"]
    ), body


@pytest.mark.parametrize("folds", [1, 0, 11, -3])
def test_folds_outside_two_to_ten_are_a_422_naming_the_field(api: httpx.Client, folds: int) -> None:
    dataset_id = upload_ok(api, customers_frame(rows=60), "churned")["id"]
    _rejects_folds(_post(api, dataset_id, training={"cross_validation": {"folds": folds}}))


def test_more_folds_than_rows_of_the_smallest_class_is_a_422(api: httpx.Client) -> None:
    frame = customers_frame(rows=60)
    frame["churned"] = ["rare"] * 4 + ["common"] * 56
    dataset_id = upload_ok(api, frame, "churned")["id"]
    _rejects_folds(
        _post(api, dataset_id, training={"cross_validation": {"folds": 5}}), "rarest class has 4"
    )
    accepted = _post(api, dataset_id, training={"cross_validation": {"folds": 4}})
    assert accepted.status_code == 202, accepted.text


def test_more_folds_than_training_rows_is_a_422(api: httpx.Client) -> None:
    dataset_id = upload_ok(api, regression_frame(rows=12), "target value")["id"]
    # 12 rows, 3 of them test rows: 9 training rows cannot make 10 folds.
    _rejects_folds(
        _post(api, dataset_id, training={"cross_validation": {"folds": 10}, "test_split": 0.25}),
        "9",
    )
    response = _post(
        api, dataset_id, training={"cross_validation": {"folds": 9}, "test_split": 0.25}
    )
    assert response.status_code == 202, response.text


# --- Real searches ----------------------------------------------------------------------------


def _arrays(path: Path) -> list[np.ndarray]:
    """Every weight array in a Keras weights file."""
    found: list[np.ndarray] = []

    def visit(_name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and item.ndim == 2:
            found.append(np.asarray(item))

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return found


@pytest.mark.slow
@sqlite_only  # the search runs the same on either backend; the suite's time is what matters here
def test_a_cross_validated_job_scores_folds_and_serves_its_refit_model(
    api: httpx.Client, start_worker, settings: Settings
) -> None:
    import keras

    frame, target = as_uploaded(customers_frame(rows=120, seed=5)), "churned"
    dataset = upload_ok(api, frame, target)
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2, "seed": 77},
        training={"epochs": 4, "test_split": 0.2, "cross_validation": {"folds": 3}},
        callbacks={"early_stopping": {"patience": 1}},
        pruning=None,
        search_space=ONE_LAYER_SPACE,
    )
    assert job["spec"]["training"]["cross_validation"] == {"folds": 3}
    start_worker()
    # The running trial's finished folds, as polled: its progress between folds, where its
    # epochs (means over the folds) are rewritten rather than added.
    seen: set[int | None] = set()
    stalled = Stalled(240)
    while (job := api.get(f"/api/v1/jobs/{job['id']}").json())["status"] not in FINISHED:
        if (current := job["progress"]["current_trial"]) is not None:
            seen.add(current["folds_completed"])
        assert not stalled(job), job
        time.sleep(0.02)
    assert job["status"] == "succeeded", job
    assert None not in seen, seen
    assert seen & {1, 2}, seen

    # Each trial: a score per fold, its score their mean, its curve one row per epoch.
    trials = [t for t in trials_of(api, job["id"]) if t["status"] == "COMPLETED"]
    assert len(trials) == 2
    for trial in trials:
        assert len(trial["fold_scores"]) == 3
        assert trial["score"] == pytest.approx(np.mean(trial["fold_scores"]), rel=1e-6)
        detail = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()
        assert trial["epochs_run"] == len(detail["metrics"]) <= 4
        assert [m["epoch"] for m in detail["metrics"]] == list(range(trial["epochs_run"]))

    # The baselines are scored on the same folds: the mean over them, fold by fold.
    labels = np.array([dataset["classes"].index(v) for v in frame[target]])
    split = split_dataset(
        len(frame), validation_split=0.2, test_split=0.2, seed=77, labels=labels, folds=3
    )
    linear = job["baselines"]["linear"]
    assert len(linear["fold_scores"]) == 3
    assert linear["score"] == pytest.approx(np.mean(linear["fold_scores"]))
    assert all(0 <= s <= 1 for s in job["baselines"]["gradient_boosting"]["fold_scores"])

    # The best configuration was refit on every training row (all but the 24 test rows),
    # for its folds' mean best epoch count.
    metrics = job["best"]["test_metrics"]
    assert metrics["refit"]["rows"] == len(split.train) == 96
    assert 1 <= metrics["refit"]["epochs"] <= 4

    # The served model is that refit, not the best fold's: none of its kernels is one of
    # the best trial's fold checkpoints'.
    directory = job_dir(settings, job["id"])
    trial_dir = directory / KERAS_TUNER_PROJECT / f"trial_{job['best']['trial_id']}"
    checkpoints = sorted(trial_dir.glob("*.weights.h5"))
    assert checkpoints, list(trial_dir.iterdir())
    served = keras.models.load_model(directory / BEST_MODEL_FILE)
    served_kernels = [w for w in served.get_weights() if w.ndim == 2]
    for checkpoint in checkpoints:
        for kernel in _arrays(checkpoint):
            assert not any(
                w.shape == kernel.shape and np.allclose(w, kernel) for w in served_kernels
            ), checkpoint.name

    # /predict is that model, and the test score is of that model.
    test_rows = frame.iloc[split.test]
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in test_rows.drop(columns=[target]).to_dict("records")
    ]
    response = api.post(f"/api/v1/jobs/{job['id']}/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    predicted = [p["label"] for p in response.json()["predictions"]]
    accuracy = np.mean([p == t for p, t in zip(predicted, test_rows[target], strict=True)])
    assert job["best"]["test_score"] == pytest.approx(accuracy)


@pytest.mark.slow
@sqlite_only  # the search runs the same on either backend; the suite's time is what matters here
def test_hyperband_with_folds_continues_each_fold_from_its_own_parent(
    api: httpx.Client, start_worker, settings: Settings
) -> None:
    dataset = upload_ok(api, regression_frame(rows=60, seed=3), "target value")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "hyperband", "max_epochs": 3, "min_epochs": 1, "factor": 3, "seed": 5},
        training={"epochs": 3, "cross_validation": {"folds": 2}},
        search_space=ONE_LAYER_SPACE,
        # Hyperband's whole schedule, however slow the machine: no time budget.
        max_runtime_s=None,
    )
    start_worker()
    job = wait_for_job(api, job["id"])
    assert job["status"] == "succeeded", job
    trials = [t for t in trials_of(api, job["id"]) if t["status"] == "COMPLETED"]
    assert len(trials) >= 3
    # KerasTuner's own record of the schedule: some trial continued another, each of its
    # folds from its parent's same fold (a missing fold checkpoint would have failed it).
    project = job_dir(settings, job["id"]) / KERAS_TUNER_PROJECT
    values = [
        json.loads(path.read_text())["hyperparameters"]["values"]
        for path in project.glob("trial_*/trial.json")
    ]
    assert any("tuner/trial_id" in v for v in values), values
    for trial in trials:
        assert len(trial["fold_scores"]) == 2
        assert trial["score"] == pytest.approx(np.mean(trial["fold_scores"]), rel=1e-6)
    assert (job_dir(settings, job["id"]) / BEST_MODEL_FILE).exists()


@pytest.mark.slow
@sqlite_only  # the search runs the same on either backend; the suite's time is what matters here
def test_a_parallel_job_cross_validates_and_its_chief_refits(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, customers_frame(rows=100, seed=8), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 3, "seed": 9},
        training={"epochs": 2, "test_split": 0.2, "cross_validation": {"folds": 2}},
        search_space=ONE_LAYER_SPACE,
        parallel_trials=2,
    )
    for _ in range(2):
        start_worker()
    job = wait_for_job(api, job["id"])
    assert job["status"] == "succeeded", job
    trials = [t for t in trials_of(api, job["id"]) if t["status"] == "COMPLETED"]
    assert len(trials) == 3
    assert all(len(t["fold_scores"]) == 2 for t in trials), trials
    # The chief, which saw the search end, refit the winner on the 80 training rows.
    assert job["best"]["test_metrics"]["refit"]["rows"] == 80
