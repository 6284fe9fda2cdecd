"""Honest scores: stratified splits, held-out test rows, scikit-learn baselines on the
search's own validation rows, and a fresh seed for every job that does not give one."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.search.table_profiles import MISSING_TOKEN
from app.settings import Settings
from app.store.models import Dataset
from app.store.uploads import dataset_path
from tests.conftest import sqlite_only
from tests.factories import (
    ONE_LAYER_SPACE,
    assert_problem,
    csv_bytes,
    customers_frame,
    regression_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)
from tuner_jobs.search.split import split_dataset, split_rows

# --- The split ------------------------------------------------------------------------------


def _within_one_row(part: np.ndarray, labels: np.ndarray) -> None:
    counts = Counter(labels[part].tolist())
    for label, total in Counter(labels.tolist()).items():
        assert abs(counts.get(label, 0) - total * len(part) / len(labels)) <= 1, (label, counts)


@pytest.mark.parametrize("seed", range(8))
def test_classification_splits_keep_the_class_proportions(seed: int) -> None:
    # 70 / 20 / 10: a plain random split of 30 validation rows misses this by a row or more
    # for most seeds.
    labels = np.repeat([0, 1, 2], [105, 30, 15])
    np.random.default_rng(seed).shuffle(labels)
    split = split_dataset(150, validation_split=0.2, test_split=0.2, seed=seed, labels=labels)
    for part in (split.train, split.validation, split.test):
        _within_one_row(part, labels)
    assert (len(split.test), len(split.validation)) == (30, 24)
    everything = np.concatenate([split.train, split.validation, split.test])
    assert sorted(everything.tolist()) == list(range(150))  # each row in exactly one part
    again = split_dataset(150, validation_split=0.2, test_split=0.2, seed=seed, labels=labels)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            (split.train, split.validation, split.test),
            (again.train, again.validation, again.test),
            strict=True,
        )
    )


def test_the_test_rows_do_not_move_with_the_validation_split() -> None:
    labels = np.arange(200) % 2
    a = split_dataset(200, validation_split=0.1, test_split=0.25, seed=5, labels=labels)
    b = split_dataset(200, validation_split=0.4, test_split=0.25, seed=5, labels=labels)
    assert sorted(a.test.tolist()) == sorted(b.test.tolist())
    assert not set(a.test) & (set(b.train) | set(b.validation))


def test_a_regression_split_without_test_rows_is_the_previous_one() -> None:
    # The rows a regression job validated on before this change: benchmarks/ relies on it.
    order = np.random.default_rng(3).permutation(50)
    train, validation = split_rows(50, 0.2, 3)
    assert np.array_equal(validation, order[:10])
    assert np.array_equal(train, order[10:])


def test_a_class_too_small_to_stratify_still_splits() -> None:
    labels = np.array([0] * 19 + [1])
    train, validation = split_rows(20, 0.25, 0, labels=labels)
    assert sorted([*train, *validation]) == list(range(20))


def test_prepare_trains_and_validates_on_every_row_but_the_test_rows(
    api: httpx.Client, engine: Engine, settings: Settings
) -> None:
    from tuner_jobs.search.data import prepare

    frame = customers_frame(rows=101)
    dataset_id = upload_ok(api, frame, "churned")["id"]
    with Session(engine) as session:
        dataset = session.get_one(Dataset, dataset_id)
    data = prepare(
        path=dataset_path(settings.datasets_dir, dataset.sha256, dataset.format),
        fmt=dataset.format,
        target=dataset.target,
        task=dataset.task,
        classes=dataset.classes,
        columns=dataset.columns,
        validation_split=0.2,
        seed=11,
        max_unpacked_bytes=1 << 30,
        test_split=0.2,
    )
    assert len(data.x_test) == 20
    assert len(data.x_train) + len(data.x_val) == 101 - 20
    assert not set(data.split.test) & (set(data.split.train) | set(data.split.validation))
    labels = (frame["churned"] == dataset.classes[1]).to_numpy(dtype="float32")
    assert np.array_equal(data.y_test, labels[data.split.test])


# --- Bad input and the seed (no worker) -----------------------------------------------------


@pytest.mark.parametrize("test_split", [0.5, 0.9, -0.1, "a lot"])
def test_a_test_split_out_of_range_is_a_422_naming_the_field(
    api: httpx.Client, test_split: Any
) -> None:
    dataset = upload_ok(api, customers_frame(rows=40), "churned")
    response = api.post(
        "/api/v1/jobs", json={"dataset_id": dataset["id"], "training": {"test_split": test_split}}
    )
    body = assert_problem(response, 422, "test_split")
    assert any(error["loc"][-1] == "test_split" for error in body["errors"])


def test_a_job_without_a_seed_draws_one_and_records_it(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(rows=40), "churned")
    seeds = [submit(api, dataset["id"])["spec"]["tuner"]["seed"] for _ in range(3)]
    assert all(isinstance(seed, int) and 0 <= seed < 2**31 for seed in seeds)
    assert len(set(seeds)) == 3
    given = submit(api, dataset["id"], tuner={"seed": seeds[0]}, training={"test_split": 0.1})
    assert given["spec"]["tuner"]["seed"] == seeds[0]
    assert given["spec"]["training"]["test_split"] == 0.1


# --- Real searches ----------------------------------------------------------------------------


def as_uploaded(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as the service reads it back from the uploaded CSV (its float digits)."""
    return pd.read_csv(io.BytesIO(csv_bytes(frame)))


def _linear_baseline(frame: pd.DataFrame, target: str, task: str) -> Any:
    """The linear baseline built here from scikit-learn, independently of the service."""
    numeric = [c for c in frame.columns if c != target and frame[c].dtype.kind == "f"]
    categorical = [c for c in frame.columns if c not in numeric and c != target]
    columns = ColumnTransformer(
        [
            ("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("c", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = LogisticRegression(max_iter=1000) if task == "classification" else Ridge()
    return make_pipeline(columns, model)


def _inputs(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    x = frame.drop(columns=[target]).copy()
    for column in x.columns:
        if x[column].dtype.kind != "f":
            x[column] = x[column].astype(object).where(x[column].notna(), MISSING_TOKEN).astype(str)
    return x


@pytest.mark.slow
@sqlite_only  # the split is the search process's; its scores are stored as any trial's
def test_test_rows_never_choose_the_model_but_show_in_its_test_score(
    api: httpx.Client, start_worker
) -> None:
    rows, seed, target = 160, 1234, "target value"
    clean = regression_frame(rows=rows, features=3, seed=4)
    # The same table, its held-out rows with targets that contradict the rest. A
    # regression split depends on the row count and the seed only: the same rows in both.
    split = split_dataset(rows, validation_split=0.25, test_split=0.25, seed=seed)
    contradicting = clean.copy()
    mean = clean[target].mean()
    contradicting.loc[split.test, target] = 2 * mean - clean.loc[split.test, target] + 200
    contradicting = as_uploaded(contradicting)
    spec = {
        "tuner": {"algorithm": "random_search", "max_trials": 2, "seed": seed},
        "training": {"epochs": 3, "validation_split": 0.25, "test_split": 0.25},
        "callbacks": {"early_stopping": None},
        "search_space": ONE_LAYER_SPACE,
    }
    ids = [
        submit(api, upload_ok(api, f, target)["id"], **spec)["id"] for f in (clean, contradicting)
    ]
    start_worker()
    jobs = [wait_for_job(api, job_id) for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs

    # Selection saw the same rows in both: the same validation scores, trial by trial.
    scores = [[t["score"] for t in trials_of(api, job["id"])] for job in jobs]
    assert scores[0] == pytest.approx(scores[1], rel=1e-3)
    assert jobs[0]["best"]["score"] == pytest.approx(jobs[1]["best"]["score"], rel=1e-3)
    assert jobs[0]["baselines"]["linear"]["score"] == jobs[1]["baselines"]["linear"]["score"]
    # ... while the test score shows the contradicting rows.
    honest, fooled = (job["best"] for job in jobs)
    assert fooled["test_score"] > 10 * honest["test_score"]
    for best in (honest, fooled):
        metrics = best["test_metrics"]
        assert metrics["rows"] == len(split.test) == 40
        assert metrics["metric"] == "val_loss"
        assert metrics["score"] == best["test_score"]
        assert {"mae", "rmse", "r2"} <= metrics.keys()
        assert metrics["rmse"] == pytest.approx(np.sqrt(metrics["score"]), rel=1e-3)

    # The linear baseline, rebuilt here, on the rows the job's recorded seed gives.
    recorded = split_dataset(
        rows, validation_split=0.25, test_split=0.25, seed=jobs[1]["spec"]["tuner"]["seed"]
    )
    # The targets as the network sees them (float32), which the baselines are scored on too.
    y = contradicting[target].to_numpy().astype("float32").astype("float64")
    x = _inputs(contradicting, target)
    model = _linear_baseline(contradicting, target, "regression")
    model.fit(x.iloc[recorded.train], y[recorded.train])
    linear = jobs[1]["baselines"]["linear"]
    val = mean_squared_error(y[recorded.validation], model.predict(x.iloc[recorded.validation]))
    test = mean_squared_error(y[recorded.test], model.predict(x.iloc[recorded.test]))
    assert linear["score"] == pytest.approx(val, rel=1e-9)
    assert linear["test_score"] == pytest.approx(test, rel=1e-9)
    assert jobs[1]["baselines"]["gradient_boosting"]["test_score"] > 0


@pytest.mark.slow
@sqlite_only  # scikit-learn in the search process; the job's JSON columns as elsewhere
def test_a_classification_job_has_baselines_and_a_confusion_matrix(
    api: httpx.Client, start_worker
) -> None:
    frame, target = as_uploaded(customers_frame(rows=150, seed=2)), "churned"
    dataset = upload_ok(api, frame, target)
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2},
        training={"epochs": 2, "test_split": 0.2},
        search_space=ONE_LAYER_SPACE,
    )
    start_worker()
    job = wait_for_job(api, job["id"])
    assert job["status"] == "succeeded", job

    metrics = job["best"]["test_metrics"]
    assert metrics["trial_id"] == job["best"]["trial_id"]
    assert metrics["labels"] == dataset["classes"]
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (2, 2)
    assert matrix.sum() == metrics["rows"] == 30
    assert job["best"]["test_score"] == pytest.approx(np.trace(matrix) / matrix.sum())

    # The baseline's accuracy on the validation rows the job's own seed gives.
    labels = np.array([dataset["classes"].index(v) for v in frame[target]])
    split = split_dataset(
        len(frame),
        validation_split=0.2,
        test_split=0.2,
        seed=job["spec"]["tuner"]["seed"],
        labels=labels,
    )
    _within_one_row(split.validation, labels)
    x, y = _inputs(frame, target), frame[target].to_numpy()
    model = _linear_baseline(frame, target, "classification").fit(
        x.iloc[split.train], y[split.train]
    )
    baselines = job["baselines"]
    assert baselines["linear"]["score"] == pytest.approx(
        accuracy_score(y[split.validation], model.predict(x.iloc[split.validation]))
    )
    assert baselines["linear"]["test_score"] == pytest.approx(
        accuracy_score(y[split.test], model.predict(x.iloc[split.test]))
    )
    assert 0 <= baselines["gradient_boosting"]["score"] <= 1


@pytest.mark.slow
@sqlite_only  # the seed is drawn at submission, in Python on either backend
def test_jobs_without_a_seed_explore_different_first_trials(
    api: httpx.Client, start_worker
) -> None:
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    spec = {
        "tuner": {"algorithm": "random_search", "max_trials": 1},
        "training": {"epochs": 1},
        "search_space": {**ONE_LAYER_SPACE, "units": {"type": "pow2", "min": 8, "max": 64}},
    }
    first, second = (submit(api, dataset["id"], **spec)["id"] for _ in range(2))
    start_worker()
    jobs = [wait_for_job(api, job_id) for job_id in (first, second)]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    # Resubmitted with the seed the first job recorded: the same first trial again.
    again = submit(
        api, dataset["id"], **{**spec, "tuner": {**spec["tuner"], **jobs[0]["spec"]["tuner"]}}
    )
    assert wait_for_job(api, again["id"])["status"] == "succeeded"
    first_trials = [trials_of(api, job_id)[0]["hyperparameters"] for job_id in (first, second)]
    assert first_trials[0] != first_trials[1]  # learning_rate alone is a continuous draw
    assert trials_of(api, again["id"])[0]["hyperparameters"] == first_trials[0]
