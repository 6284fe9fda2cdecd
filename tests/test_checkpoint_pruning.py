"""Checkpoint pruning keeps what a running trial will still read: a real KerasTuner
Hyperband tuner, its oracle driven by hand as two tuners of a parallel job drive it
(no training: each finished trial leaves a checkpoint file where KerasTuner puts one)."""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt
import pytest

from tuner_jobs.search.best_model import prune_checkpoints
from tuner_jobs.search.keras_tuner_compat import checkpoint_path, hyperband_brackets


def _tuner(directory: Path) -> kt.Hyperband:
    def build(hp: kt.HyperParameters) -> None:
        hp.Int("units", 1, 64)

    hyperparameters = kt.HyperParameters()
    hyperparameters.Int("units", 1, 64)
    return kt.Hyperband(
        hypermodel=build,
        hyperparameters=hyperparameters,
        objective=kt.Objective("val_loss", "min"),
        max_epochs=9,
        factor=3,
        seed=1,
        directory=str(directory),
        project_name="p",
    )


def _finish(tuner: kt.Hyperband, trial: kt.engine.trial.Trial, loss: float) -> None:
    path = Path(checkpoint_path(tuner, trial.trial_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    tuner.oracle.update_trial(trial.trial_id, {"val_loss": loss})
    trial.status = "COMPLETED"  # as KerasTuner's own tuner does before it ends the trial
    tuner.oracle.end_trial(trial)


def _listed(oracle: kt.Oracle) -> set[str]:
    return {i["id"] for b in hyperband_brackets(oracle) for r in b["rounds"] for i in r}


def test_a_handed_out_continuation_keeps_its_parents_checkpoint(tmp_path: Path) -> None:
    tuner = _tuner(tmp_path)
    oracle = tuner.oracle
    for n in range(200):
        # tuner1 takes a trial; when it continues a parent, tuner0 (the chief's own tuner)
        # asks for one too, and the oracle may then drop the parent's bracket: its last
        # round is handed out, though not finished.
        trial = oracle.create_trial("tuner1")
        assert trial.status == "RUNNING", f"no dropped bracket after {n} trials"
        parent = trial.hyperparameters.values.get("tuner/trial_id")
        if parent is not None:
            held = oracle.create_trial("tuner0")
            if held.status == "RUNNING" and parent not in _listed(oracle):
                break
            if held.status == "RUNNING":
                _finish(tuner, held, loss=50.0 + n)
        _finish(tuner, trial, loss=1.0 + n)
    else:
        pytest.fail("the oracle never dropped a bracket with a trial running")
    # tuner0's trial ends and its after-trial pruning runs while tuner1 has not yet loaded
    # the parent's weights.
    _finish(tuner, held, loss=100.0)
    prune_checkpoints(tuner)
    assert Path(checkpoint_path(tuner, parent)).exists()
    # Once the continuation has ended, its parent's checkpoint is not kept for it.
    _finish(tuner, trial, loss=0.5)
    prune_checkpoints(tuner)
    assert not Path(checkpoint_path(tuner, parent)).exists()


@pytest.fixture(autouse=True)
def _no_tuner_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
