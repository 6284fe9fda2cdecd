"""Portable models: the best model as .keras, SavedModel and ONNX, loaded where this service
is not installed, gives /predict's numbers; its model card says what the job says."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.browser import dashboard
from tests.conftest import sqlite_only
from tests.factories import (
    SMALL_SPACE,
    assert_problem,
    customers_frame,
    submit,
    upload_ok,
    wait_for_job,
)

pytestmark = [pytest.mark.slow, sqlite_only]

# Missing numbers and categories, a city the model never saw, columns with ' ' and '/'.
ROWS = [
    {"age (years)": 30, "income/yr": 61000.5, "home city": "Porto", "plan": "pro"},
    {"age (years)": None, "income/yr": 30000, "home city": None, "plan": "basic"},
    {"age (years)": 55, "income/yr": None, "home city": "Madrid", "plan": "basic"},
    {"age (years)": None, "income/yr": None, "home city": None, "plan": None},
]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]

# The user's side, as docs/models.md tells it: rows -> one [n, 1] array per column, named
# as the model card says; NaN for a missing number, the card's token for a missing category.
ENCODE = """
import json, sys
sys.path.append(SITE_PACKAGES)  # the venv's packages, without its .pth files (no editables)
for name in ("tuner_jobs", "app"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(f"{name} is importable: the test proves nothing")
import numpy as np
card = json.loads(open("model_card.json").read())
rows = json.loads(open("rows.json").read())
MISSING = "[missing]"
assert repr(MISSING) in card["inputs"]["categorical"]

def encode(rows, key):
    out = {}
    for column in card["dataset"]["columns"]:
        values = [row[column["name"]] for row in rows]
        if column["kind"] == "numeric":
            array = np.array([[np.nan if v is None else v] for v in values], "float32")
        else:
            array = np.array([[MISSING if v is None else str(v)] for v in values], dtype=object)
        out[column[key]] = array
    return out
"""

KERAS_AND_SAVED_MODEL = """
import keras, tensorflow as tf
model = keras.saving.load_model("best.keras", safe_mode=True)
as_str = lambda d: {k: (v.astype(str) if v.dtype == object else v) for k, v in d.items()}
keras_out = keras.ops.convert_to_numpy(model(as_str(encode(rows, "keras_input"))))
# The model card's median for the first numeric column is what a missing value becomes.
first = next(n for n in card["preprocessing"]["numeric"])
filled = [dict(row, **{first["column"]: row[first["column"]] if row[first["column"]] is not None
          else first["median"]}) for row in rows]
assert filled != rows
keras_filled = keras.ops.convert_to_numpy(model(as_str(encode(filled, "keras_input"))))
loaded = tf.saved_model.load("saved/best_model/1")
serve = loaded.signatures["serving_default"]
inputs = {k: tf.constant(v.astype(str) if v.dtype == object else v)
          for k, v in encode(rows, "serving_input").items()}
saved_out = serve(**inputs)["output_0"].numpy()
print(json.dumps({
    "keras": keras_out.astype(float).tolist(),
    "keras_filled": keras_filled.astype(float).tolist(),
    "saved_model": saved_out.astype(float).tolist(),
    "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
}))
"""

ONNX = """
import onnx, onnxruntime
session = onnxruntime.InferenceSession("best.onnx", providers=["CPUExecutionProvider"])
(out,) = session.run(["output_0"], encode(rows, "serving_input"))
assert "tensorflow" not in sys.modules and "keras" not in sys.modules
opsets = {o.domain: o.version for o in onnx.load("best.onnx").opset_import}
print(json.dumps({"onnx": out.astype(float).tolist(), "opset": opsets.get("")}))
"""


def run_isolated(program: str, cwd: Path) -> dict[str, Any]:
    """`program` in the venv's interpreter, isolated (-I: no cwd, no PYTHON* variables) and
    without site (-S: the editable installs of this repository are never put on sys.path),
    from a directory outside the repository."""
    source = f"SITE_PACKAGES = {SITE_PACKAGES!r}\n{ENCODE}\n{program}"
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", source],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def download(api: httpx.Client, url: str, path: Path) -> httpx.Response:
    response = api.get(url)
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return response


def test_every_format_loads_without_the_service_and_matches_predict(
    api: httpx.Client, start_worker, settings: Settings, tmp_path: Path
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2},
        training={"epochs": 2, "test_split": 0.2, "cross_validation": None},
        search_space=SMALL_SPACE,
        # One search process (runner.run_search), which rewrites the card once the test
        # score and the baselines are in.
        parallel_trials=1,
    )
    base = f"/api/v1/jobs/{job['id']}"
    assert_problem(api.get(f"{base}/model?format=onnx"), 404, "no model")
    assert_problem(api.get(f"{base}/model_card"), 404, "no model card")
    assert_problem(api.get(f"{base}/model?format=pickle"), 422, "format")
    assert_problem(api.get(f"{base}/model_card?format=pdf"), 422, "format")
    assert_problem(api.get("/api/v1/jobs/0123456789abcdef/model?format=onnx"), 404)
    start_worker()
    done = wait_for_job(api, job["id"])
    assert done["status"] == "succeeded", done

    work = tmp_path / "elsewhere"
    work.mkdir()
    response = download(api, f"{base}/model?format=keras", work / "best.keras")
    assert f"{job['id']}-best.keras" in response.headers["content-disposition"]
    response = download(api, f"{base}/model?format=saved_model", work / "saved.tar.gz")
    assert response.headers["content-type"] == "application/gzip"
    download(api, f"{base}/model?format=onnx", work / "best.onnx")
    card_response = api.get(f"{base}/model_card")
    assert card_response.status_code == 200, card_response.text
    card = card_response.json()
    (work / "model_card.json").write_text(json.dumps(card))
    (work / "rows.json").write_text(json.dumps(ROWS))
    with tarfile.open(work / "saved.tar.gz") as tar:
        names = tar.getnames()
        # TensorFlow Serving's layout, and the card inside, the same as served.
        assert "best_model/1/saved_model.pb" in names
        inside = tar.extractfile("best_model/1/assets.extra/model_card.json")
        assert inside is not None
        assert json.loads(inside.read()) == card
        tar.extractall(work / "saved", filter="data")

    served = api.post(f"{base}/predict", json={"rows": ROWS})
    assert served.status_code == 200, served.text
    positive = card["dataset"]["classes"][1]
    expected = [p["probabilities"][str(positive)] for p in served.json()["predictions"]]

    tf_side = run_isolated(KERAS_AND_SAVED_MODEL, work)
    onnx_side = run_isolated(ONNX, work)
    for name, outputs in (
        ("keras", tf_side["keras"]),
        ("saved_model", tf_side["saved_model"]),
        ("onnx", onnx_side["onnx"]),
    ):
        got = [out[0] for out in outputs]
        assert got == pytest.approx(expected, abs=1e-5), name
    # A missing number is the card's median: the same output as sending that median.
    filled = [out[0] for out in tf_side["keras_filled"]]
    assert filled == pytest.approx([out[0] for out in tf_side["keras"]], abs=1e-6)
    assert onnx_side["opset"] == card["formats"]["onnx"]["opset"]

    # The card's numbers are the job's and the dataset's.
    ds = api.get(f"/api/v1/datasets/{dataset['id']}").json()
    assert card["trial_id"] == done["best"]["trial_id"]
    assert card["hyperparameters"] == done["best"]["hyperparameters"]
    assert card["scores"]["validation"] == pytest.approx(done["best"]["score"])
    assert card["scores"]["test"]["score"] == pytest.approx(done["best"]["test_score"])
    assert card["scores"]["baselines"] == done["baselines"]
    assert card["dataset"]["sha256"] == ds["sha256"]
    assert card["dataset"]["rows"] == ds["rows"]
    assert card["dataset"]["classes"] == ds["classes"]
    assert {c["name"]: c["missing"] for c in card["dataset"]["columns"]} == {
        c["name"]: c["missing"] for c in ds["columns"]
    }
    assert {c["column"]: c["vocabulary_size"] for c in card["preprocessing"]["categorical"]} == {
        c["name"]: c["categories"] for c in ds["columns"] if c["kind"] == "categorical"
    }
    assert card["versions"]["tensorflow"] == tf_side["versions"]["tensorflow"]
    assert card["versions"]["keras"] == tf_side["versions"]["keras"]
    assert card["versions"]["keras_tuner"]
    assert card["training"]["trial_duration_s"] > 0

    markdown = api.get(f"{base}/model_card?format=md")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert ds["sha256"] in markdown.text
    assert "## Hyperparameters" in markdown.text

    # The dashboard's job page shows the card, with a download per format.
    origin = str(api.base_url).rstrip("/")
    with dashboard(origin, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        tab.page.goto(f"{origin}/#/jobs/{job['id']}")
        panel = tab.page.locator("#model-card-panel")
        expect(panel.locator("#model-card-dataset")).to_contain_text(ds["sha256"])
        expect(panel.locator('#model-card-columns tr[data-column="income/yr"]')).to_contain_text(
            "income_yr"
        )
        expect(panel.locator("#model-card-scores")).to_contain_text(card["versions"]["tensorflow"])
        for key in ("keras", "saved_model", "onnx"):
            expect(panel.locator(f'button[data-format="{key}"]')).to_be_visible()
        tab.shot("model-card")

    # A format whose file is gone is a 404 naming it; the others still download.
    (settings.jobs_dir / job["id"] / "best_model.onnx").unlink()
    assert_problem(api.get(f"{base}/model?format=onnx"), 404, "onnx")
    assert api.get(f"{base}/model").status_code == 200
