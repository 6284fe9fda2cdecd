"""The API process's promises: no TensorFlow, health, problem+json for unknown routes."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.conftest import ROOT
from tests.factories import assert_problem


def test_api_never_imports_tensorflow() -> None:
    code = (
        "import json, sys, app.main, app.cli, tuner_jobs.worker.supervisor\n"
        "app.main.create_app\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') "
        "if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_boundary_test_would_notice_tensorflow() -> None:
    # Guards the test above: the same check does see TensorFlow once something imports it.
    code = (
        "import json, sys, tuner_jobs.search.runner\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') "
        "if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["keras", "keras_tuner", "tensorflow"]


def test_health_reports_the_database(api: httpx.Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    # No worker runs beside this API: degraded, and saying why (test_worker_supervision.py).
    assert response.json()["database"] == "ok"
    assert response.json()["status"] == "degraded"
    assert "no worker is alive" in response.json()["reasons"][0]


def test_swagger_ui_and_openapi_are_served(api: httpx.Client) -> None:
    assert "swagger-ui" in api.get("/docs").text.lower()
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/v1/datasets" in paths
    assert "/api/v1/jobs/{job_id}/trials/{trial_id}" in paths


def test_unknown_ids_are_problem_json_404(api: httpx.Client) -> None:
    assert_problem(api.get("/api/v1/jobs/nope"), 404, "nope")
    assert_problem(api.get("/api/v1/datasets/nope"), 404, "nope")
    assert_problem(api.get("/api/v1/jobs/nope/trials"), 404, "nope")
    assert_problem(api.get("/api/v1/no/such/route"), 404)
