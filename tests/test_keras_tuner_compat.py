"""The one module that reads KerasTuner's internals refuses a version it was not read for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras_tuner as kt
import pytest

from tuner_jobs.search.keras_tuner_compat import (
    SUPPORTED,
    UnsupportedKerasTuner,
    check_version,
    drop_ended_retries,
)


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


def _oracle(directory: Path) -> kt.Oracle:
    space = kt.HyperParameters()
    space.Int("units", 1, 100)
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("score", "max"), max_trials=10, hyperparameters=space, seed=1
    )
    oracle._set_project_dir(str(directory), "project")
    return oracle


def test_a_trial_ended_just_before_its_chief_died_is_not_run_again(tmp_path: Path) -> None:
    """The state `Oracle.end_trial` leaves if its process dies between writing oracle.json and
    dropping the trial from its ongoing ones: the trial both ended and ongoing on disk."""
    oracle = _oracle(tmp_path)
    ended = oracle.create_trial("tuner1")
    running = oracle.create_trial("tuner2")
    oracle.update_trial(ended.trial_id, {"score": 0.5})
    ended.status = "COMPLETED"
    oracle.end_trial(ended)
    oracle.ongoing_trials["tuner1"] = oracle.trials[ended.trial_id]  # as on disk mid-end_trial
    oracle.save()

    reloaded = _oracle(tmp_path)
    reloaded.reload()
    assert drop_ended_retries(reloaded) == [ended.trial_id]
    # The trial that was really running is retried; the ended one is not handed out again.
    assert reloaded.create_trial("tuner1").trial_id == running.trial_id
    assert reloaded.create_trial("tuner2").trial_id not in {ended.trial_id, running.trial_id}
    assert drop_ended_retries(reloaded) == []
