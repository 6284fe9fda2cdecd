"""The program app.api.predictor starts by name: import-linter cannot see a module named in a
string, so this test is what ties the name to the module (its first contract keeps the
worker package out of the API, which is why it is named and not imported)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

from app.api.predictor import PREDICTION_PROGRAM


def test_the_program_the_api_names_exists_and_serves_a_connection() -> None:
    module = importlib.import_module(PREDICTION_PROGRAM)
    assert list(inspect.signature(module.serve).parameters) == ["conn"]


def test_naming_the_program_loads_none_of_the_worker_package() -> None:
    code = (
        "import sys, app.api.predictor; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tuner_jobs'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
