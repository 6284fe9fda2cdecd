"""The best model (ModelCheckpoint's promise): download, load in plain Python, predict."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from app.settings import Settings
from tests.conftest import ROOT, sqlite_only
from tests.factories import (
    SMALL_SPACE,
    assert_problem,
    customers_frame,
    regression_frame,
    submit,
    upload_ok,
    wait_for_job,
    wait_mid_trial,
)

pytestmark = [pytest.mark.slow, sqlite_only]

ROWS = [
    {"age (years)": 30, "income/yr": 61000.5, "home city": "Porto", "plan": "pro"},
    {"age (years)": None, "income/yr": 30000, "home city": None, "plan": "basic"},
    # A city the model never saw: it goes to the out-of-vocabulary bucket.
    {"age (years)": 55, "income/yr": 52000, "home city": "Madrid", "plan": "basic"},
]

LOAD_AND_PREDICT = """
import json, sys
import numpy as np
import keras
import tuner_jobs.search.layers  # registers the imputation layer the model uses
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
rows = json.loads(sys.argv[2])
names = {"age (years)": "age (years)", "income/yr": "income_yr", "home city": "home city",
         "plan": "plan"}
numeric = {"age (years)", "income/yr"}
inputs = {}
for column, name in names.items():
    values = [row[column] for row in rows]
    if column in numeric:
        inputs[name] = np.array([[np.nan if v is None else v] for v in values], "float32")
    else:
        inputs[name] = np.array([["[missing]" if v is None else v] for v in values])
print(json.dumps(keras.ops.convert_to_numpy(model(inputs)).astype(float).tolist()))
"""


def test_best_model_downloads_loads_in_plain_python_and_matches_predict(
    api: httpx.Client, start_worker, settings: Settings, tmp_path: Path
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        # Two trials: the other one's checkpoint is the one that must go (checked below).
        tuner={"algorithm": "random_search", "max_trials": 2},
        training={"epochs": 2},
        search_space=SMALL_SPACE,
    )
    assert_problem(api.get(f"/api/v1/jobs/{job['id']}/model"), 404, "no model")
    assert_problem(api.post(f"/api/v1/jobs/{job['id']}/predict", json={"rows": ROWS}), 409)
    start_worker()
    done = wait_for_job(api, job["id"])
    assert done["status"] == "succeeded"
    assert done["disk_bytes"] > 0

    response = api.get(f"/api/v1/jobs/{job['id']}/model")
    assert response.status_code == 200
    assert f"{job['id']}-best.keras" in response.headers["content-disposition"]
    model_file = tmp_path / "best.keras"
    model_file.write_bytes(response.content)

    served = api.post(f"/api/v1/jobs/{job['id']}/predict", json={"rows": ROWS})
    assert served.status_code == 200, served.text
    predictions = served.json()["predictions"]
    assert len(predictions) == len(ROWS)
    for prediction in predictions:
        probabilities = prediction["probabilities"]
        assert set(probabilities) == {"no", "yes"}
        assert abs(sum(probabilities.values()) - 1) < 1e-6
        assert prediction["label"] == max(probabilities, key=probabilities.get)

    out = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(model_file), json.dumps(ROWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    local = json.loads(out.stdout.strip().splitlines()[-1])
    for prediction, (p_yes,) in zip(predictions, local, strict=True):
        assert prediction["probabilities"]["yes"] == pytest.approx(p_yes, abs=1e-6)

    # Of the per-trial checkpoints, only the best trial's is kept beside the exported model.
    project = settings.jobs_dir / job["id"] / "keras_tuner"
    checkpoints = sorted(p.parent.name for p in project.glob("trial_*/*.weights.h5"))
    assert checkpoints == [f"trial_{done['best']['trial_id']}"]


def test_predict_rejects_bad_rows_naming_row_and_column(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, regression_frame(), "target value")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 3},
        search_space=SMALL_SPACE,
    )
    start_worker()
    assert wait_for_job(api, job["id"])["status"] == "succeeded"
    url = f"/api/v1/jobs/{job['id']}/predict"
    good = {"f0": 0.1, "f1": -1.0, "f2": 2}
    values = api.post(url, json={"rows": [good, {**good, "f1": None}]}).json()["predictions"]
    assert [set(p) for p in values] == [{"value"}, {"value"}]
    assert all(isinstance(p["value"], float) for p in values)

    assert_problem(api.post(url, json={"rows": [good, {"f0": 1, "f1": 2}]}), 422, "row 1", "f2")
    assert_problem(api.post(url, json={"rows": [{**good, "f0": "high"}]}), 422, "row 0", "f0")
    assert_problem(api.post(url, json={"rows": [{**good, "colour": 1}]}), 422, "colour")
    assert_problem(api.post(url, json={"rows": []}), 422, "rows")
    assert_problem(api.post(url, json={"rows": [good]} | {"extra": 1}), 422)


def test_reduce_lr_on_plateau_and_tensorboard_logs(
    api: httpx.Client, start_worker, tmp_path: Path
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 1},
        training={"epochs": 5},
        callbacks={
            "early_stopping": False,
            "reduce_lr_on_plateau": {
                "monitor": "val_loss",
                "factor": 0.5,
                "patience": 1,
                "min_delta": 0.01,
                "min_lr": 1e-9,
            },
            "tensorboard": True,
        },
        search_space={
            "num_layers": {"type": "fixed", "value": 1},
            "units": {"type": "fixed", "value": 8},
            "optimizer": {"type": "fixed", "value": "sgd"},
            # val_loss cannot improve by min_delta at this rate: a plateau from the start.
            "learning_rate": {"type": "fixed", "value": 1e-6},
            "batch_size": {"type": "fixed", "value": 32},
        },
    )
    start_worker()
    assert wait_for_job(api, job["id"])["status"] == "succeeded"
    (trial,) = api.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
    curve = api.get(f"/api/v1/jobs/{job['id']}/trials/{trial['trial_id']}").json()["metrics"]
    rates = [round(m["learning_rate"], 12) for m in curve]
    # Epoch 0 sets the best; each later epoch without improvement halves the rate.
    assert rates == [1e-6, 1e-6, 5e-7, 2.5e-7, 1.25e-7]

    # TensorBoard logs for the same run, read back with TensorBoard's own reader.
    archive = api.get(f"/api/v1/jobs/{job['id']}/tensorboard")
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        tar.extractall(tmp_path / "archive", filter="data")
    runs = {p.parent for p in (tmp_path / "archive").rglob("events.out.tfevents.*")}
    assert runs, "no event files in the archive"
    tags: set[str] = set()
    for run in runs:
        accumulator = EventAccumulator(str(run))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["tensors"])
    assert "epoch_loss" in tags
    assert "epoch_learning_rate" in tags
    # KerasTuner records each trial's hyperparameters for the HParams plugin.
    assert "_hparams_/session_start_info" in tags


def test_while_searching_the_best_model_is_kept_as_keras_and_the_end_writes_every_format(
    api: httpx.Client, start_worker
) -> None:
    """A best model the search may still replace is kept as .keras only (converting it to
    ONNX and SavedModel is most of an export's time); the model that stays gets them all."""
    dataset = upload_ok(api, customers_frame(), "churned")
    epochs = 200  # the second trial still runs while the first one's model is looked at
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2},
        training={"epochs": epochs},
        callbacks={"early_stopping": False},
        pruning=None,
        search_space=SMALL_SPACE,
    )
    start_worker()
    wait_mid_trial(api, job["id"], epochs=epochs, completed=1)
    base = f"/api/v1/jobs/{job['id']}"
    assert api.get(f"{base}/model").status_code == 200
    card = api.get(f"{base}/model_card").json()
    assert api.get(base).json()["status"] == "running"
    assert set(card["formats"]) == {"keras"}, card["formats"]
    assert card["formats"]["keras"]["interim"] is True
    assert_problem(api.get(f"{base}/model", params={"format": "onnx"}), 404, "still searching")

    done = wait_for_job(api, job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    card = api.get(f"{base}/model_card").json()
    assert set(card["formats"]) == {"keras", "onnx", "saved_model"}, card["formats"]
    assert "interim" not in card["formats"]["keras"]
    for model_format in ("onnx", "saved_model"):
        assert api.get(f"{base}/model", params={"format": model_format}).status_code == 200
