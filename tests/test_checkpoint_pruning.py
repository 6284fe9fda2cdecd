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


def _random_search(directory: Path, *, overwrite: bool) -> kt.RandomSearch:
    def build(hp: kt.HyperParameters) -> None:
        hp.Int("units", 1, 64)

    return kt.RandomSearch(
        hypermodel=build,
        objective=kt.Objective("val_loss", "min"),
        max_trials=5,
        seed=1,
        directory=str(directory),
        project_name="p",
        overwrite=overwrite,
    )


@pytest.mark.parametrize("listed", ["as written", "reversed"])
def test_tied_best_trials_name_the_same_best_after_a_reload(tmp_path: Path, listed: str) -> None:
    """A recycled search process reloads the oracle, whose trials come back in the file
    system's order: among trials tied on the score the same one must stay best, or the
    new process exports a trial whose checkpoint the last one pruned (the job failed)."""
    from tuner_jobs.search.best_model import best_completed_trial

    first = _random_search(tmp_path, overwrite=True)
    for loss in (0.5, 0.3, 0.3, 0.3):
        _finish(first, first.oracle.create_trial("tuner0"), loss)
        prune_checkpoints(first)
    first.save()  # what a search saves before each trial: the reload starts from it
    kept = best_completed_trial(first.oracle).trial_id
    assert kept == min(t for t, v in first.oracle.trials.items() if v.score == 0.3)

    second = _random_search(tmp_path, overwrite=False)  # reloads the oracle
    if listed == "reversed":
        second.oracle.trials = dict(reversed(list(second.oracle.trials.items())))
    assert best_completed_trial(second.oracle).trial_id == kept
    _finish(second, second.oracle.create_trial("tuner0"), 0.3)  # one more tie
    prune_checkpoints(second)
    assert best_completed_trial(second.oracle).trial_id == kept
    assert Path(checkpoint_path(second, kept)).exists()
