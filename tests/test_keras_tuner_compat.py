"""The one module that reads KerasTuner's internals refuses a version it was not read for."""

from __future__ import annotations

import subprocess
import sys

import keras_tuner as kt
import pytest

from tuner_jobs.search.keras_tuner_compat import SUPPORTED, UnsupportedKerasTuner, check_version


@pytest.mark.parametrize("version", ["1.4.7", "1.4.8", "1.4.12", kt.__version__])
def test_the_versions_it_was_read_for_pass(version: str) -> None:
    check_version(version)


@pytest.mark.parametrize("version", ["1.4.6", "1.5.0", "1.5.0rc1", "2.0.0", "1.10.0", "main"])
def test_any_other_version_is_refused_naming_both(version: str) -> None:
    with pytest.raises(UnsupportedKerasTuner) as raised:
        check_version(version)
    message = str(raised.value)
    assert f"keras-tuner {version} is installed" in message
    assert f"keras-tuner{SUPPORTED}" in message
    assert SUPPORTED == ">=1.4.7,<1.5"


def test_the_check_runs_when_the_module_is_imported() -> None:
    # A fresh interpreter: the installed KerasTuner, claiming to be a release not read for.
    script = (
        "import keras_tuner; keras_tuner.__version__ = '1.5.0'\n"
        "import tuner_jobs.search.keras_tuner_compat\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "UnsupportedKerasTuner: keras-tuner 1.5.0 is installed" in done.stderr
