"""Trials with the same network train one built, compiled and traced model
(tuner_jobs.search.model_reuse), and the search is KerasTuner's all the same.

Real KerasTuner Hyperband searches, in this process, on a tiny table: the service's own
tuner class, hypermodel and search space; only the SQL recorder is replaced by one that
keeps nothing (what it writes is not under test here).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pytest

from app.search.search_space import effective_search_space
from app.settings import Settings
from tuner_jobs.search.data import Head
from tuner_jobs.search.hyperparameters import build_hyperparameters
from tuner_jobs.search.keras_tuner_compat import checkpoint_path
from tuner_jobs.search.model_builder import DenseHyperModel
from tuner_jobs.search.model_reuse import ModelCache
from tuner_jobs.search.padded import real_width_model
from tuner_jobs.search.tuners import RecordingHyperband, SearchStopped

FEATURES, SEED = 6, 3
# Real searches, if in this process: with the worker-process ones, out of `make test-fast`.
pytestmark = pytest.mark.slow
HEAD = Head(1, "sigmoid", "binary_crossentropy", ("accuracy",))
# Few architectures, so that fresh configurations share networks too.
SPACE = {
    "num_layers": {"type": "int", "min": 1, "max": 2},
    "units": {"type": "choice", "values": [8, 16]},
    "dropout": {"type": "fixed", "value": 0.0},
    "activation": {"type": "fixed", "value": "relu"},
    "optimizer": {"type": "choice", "values": ["adam", "rmsprop"]},
}


class NoRecorder:
    def trial_started(self, *args: Any, **kwargs: Any) -> None: ...
    def epoch_ended(self, *args: Any, **kwargs: Any) -> None: ...
    def trial_ended(self, *args: Any, **kwargs: Any) -> None: ...
    def completed_curves(self, *args: Any) -> list[Any]:
        return []


class Never:
    def is_set(self) -> bool:
        return False


class AfterTrials:
    """Asks the search to stop once `n` trials have ended (a crash, for the next process)."""

    def __init__(self, n: int) -> None:
        self.n, self.ended = n, 0

    def is_set(self) -> bool:
        return self.ended >= self.n


class ModelsSeen(RecordingHyperband):
    """The service's Hyperband tuner, noting which model object each trial trained."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The models themselves: kept alive, no two can share an id().
        self.trained: dict[str, keras.Model] = {}
        super().__init__(*args, **kwargs)

    def on_epoch_begin(self, trial, model, epoch, logs=None):  # type: ignore[no-untyped-def]
        self.trained.setdefault(trial.trial_id, model)
        super().on_epoch_begin(trial, model, epoch, logs)

    def on_trial_end(self, trial):  # type: ignore[no-untyped-def]
        super().on_trial_end(trial)
        if isinstance(self.stop, AfterTrials):
            self.stop.ended += 1


def _data(rows: int = 120) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(0, 0.3, rows) > 0.4).astype("float32")
    cut = int(rows * 0.75)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _search(
    directory: Path, *, reuse: bool, stop: Any = None, max_epochs: int = 3, pad: bool = True
) -> ModelsSeen:
    keras.utils.set_random_seed(SEED)  # as runner.build_search does
    x, y, x_val, y_val = _data()
    tuner = ModelsSeen(
        hypermodel=DenseHyperModel(input_width=FEATURES, head=HEAD, seed=SEED),
        objective=kt.Objective("val_accuracy", "max"),
        hyperparameters=build_hyperparameters(effective_search_space(SPACE, features=FEATURES)),
        tune_new_entries=False,
        allow_new_entries=False,
        seed=SEED,
        max_epochs=max_epochs,
        factor=3,
        directory=str(directory),
        project_name="project",
        overwrite=False,
        recorder=NoRecorder(),
        stop=stop or Never(),
        model_cache=ModelCache(may_pad=pad) if reuse else None,
        rng_seed=SEED,
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=max_epochs, verbose=0)
    return tuner


def _in_start_order(tuner: kt.Tuner) -> list[Any]:
    return [tuner.oracle.trials[i] for i in tuner.oracle.start_order]


def test_a_continued_hyperband_trial_trains_its_parents_model(tmp_path: Path) -> None:
    tuner = _search(tmp_path, reuse=True)
    continued = [t for t in _in_start_order(tuner) if "tuner/trial_id" in t.hyperparameters.values]
    assert continued, "the schedule continues no trial: the test would prove nothing"
    for trial in continued:
        parent = trial.hyperparameters.values["tuner/trial_id"]
        # The same object: not rebuilt, so not recompiled nor traced again.
        assert tuner.trained[trial.trial_id] is tuner.trained[parent], trial.trial_id
    cache = tuner.model_cache
    assert cache is not None
    assert cache.builds < len(tuner.oracle.trials)
    assert cache.reuses >= len(continued)


def test_without_reuse_every_trial_builds_its_own_model(tmp_path: Path) -> None:
    """The switch (TUNER_MODEL_REUSE=0) gives KerasTuner's own build back."""
    tuner = _search(tmp_path, reuse=False)
    assert len({id(model) for model in tuner.trained.values()}) == len(tuner.trained)
    assert Settings(model_reuse=False).model_reuse is False
    assert Settings().model_reuse is True


def test_same_seed_same_trials_and_scores_with_and_without_reuse(tmp_path: Path) -> None:
    reused = _in_start_order(_search(tmp_path / "reused", reuse=True))
    built = _in_start_order(_search(tmp_path / "built", reuse=False))
    assert [t.hyperparameters.values for t in reused] == [t.hyperparameters.values for t in built]
    # Fresh weights are drawn with the seeds a fresh build draws: the same numbers.
    assert [t.score for t in reused] == pytest.approx([t.score for t in built], abs=1e-6)
    assert [t.best_step for t in reused] == [t.best_step for t in built]


@pytest.mark.parametrize("pad", [False, True], ids=["real widths", "padded"])
def test_a_reused_model_starts_as_a_fresh_build_would(tmp_path: Path, pad: bool) -> None:
    hypermodel = DenseHyperModel(input_width=FEATURES, head=HEAD, seed=SEED)
    hp = build_hyperparameters(effective_search_space(SPACE, features=FEATURES))
    hp.values.update({"num_layers": 2, "units_1": 8, "kernel_initializer": "glorot_uniform"})
    if pad:
        hp.values.update({"units_0": 16, "units_1": 16})
    tuner = _search(tmp_path, reuse=True, pad=pad)
    cache = tuner.model_cache
    assert cache is not None
    assert (cache.padding is not None) is pad
    trained = cache.model_for(tuner, hp)
    x, y, _, _ = _data()
    hypermodel.fit(hp, trained, x, y, epochs=2, verbose=0)  # weights, optimizer, lr moved

    other = hp.copy()
    # With padding, another width too: the same model, given the other widths.
    other.values.update({"kernel_initializer": "he_normal", "learning_rate": 0.0042})
    if pad:
        other.values.update({"units_0": 8, "units_1": 8})
    random.seed(11)
    fresh = hypermodel.build(other)
    random.seed(11)
    reused = cache.model_for(tuner, other)
    assert reused is trained
    handed = real_width_model(hypermodel, reused, other) if pad else reused
    for a, b in zip(fresh.get_weights(), handed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(reused.optimizer.iterations.numpy()) == 0
    assert all(not np.any(keras.ops.convert_to_numpy(v)) for v in reused.optimizer.variables[2:])
    assert float(reused.optimizer.learning_rate.numpy()) == pytest.approx(0.0042)
    # The saved model's config names the trial's initializer, not the first build's.
    hidden = [layer for layer in handed.layers if isinstance(layer, keras.layers.Dense)][0]
    assert type(hidden.kernel_initializer).__name__ == "HeNormal"
    if pad:  # the units past the trial's widths: zero weights in and out
        first, second, output = (
            keras.ops.convert_to_numpy(layer.kernel)
            for layer in reused.layers
            if isinstance(layer, keras.layers.Dense)
        )
        assert first.shape == (FEATURES, 16)
        assert second.shape == (16, 16)
        assert not first[:, 8:].any()
        assert not second[8:].any()
        assert not second[:, 8:].any()
        assert not output[8:].any()


def test_a_search_stopped_midway_resumes_with_an_empty_cache(tmp_path: Path) -> None:
    """A new process has no models: continuations there build theirs and load the
    parent's checkpoint from the project directory, as KerasTuner does."""
    with pytest.raises(SearchStopped):
        _search(tmp_path, reuse=True, stop=AfterTrials(2), max_epochs=9)
    resumed = _search(tmp_path, reuse=True, max_epochs=9)
    trials = _in_start_order(resumed)
    assert len(trials) > 2
    assert all(t.status == "COMPLETED" for t in trials)
    cache = resumed.model_cache
    assert cache is not None
    assert cache.builds >= 1


def test_a_search_resumed_in_a_fresh_process_trains_as_if_never_stopped(tmp_path: Path) -> None:
    """A search stopped between trials and resumed in a new process (the generators seeded
    afresh, as runner.build_search does, and no models cached) trains its remaining trials
    from the weights the same search run straight through gives them: a worker's recycling
    of its search process, or a crash, does not change what the seed gives."""
    straight = _in_start_order(_search(tmp_path / "straight", reuse=True))
    with pytest.raises(SearchStopped):
        _search(tmp_path / "resumed", reuse=True, stop=AfterTrials(2))
    resumed = _in_start_order(_search(tmp_path / "resumed", reuse=True))
    assert len(straight) > 3, "too few trials after the stop: the test would prove nothing"
    assert [t.hyperparameters.values for t in resumed] == [
        t.hyperparameters.values for t in straight
    ]
    assert [t.score for t in resumed] == pytest.approx([t.score for t in straight], abs=1e-6)
    assert [t.best_step for t in resumed] == [t.best_step for t in straight]


def test_a_continued_trial_loads_once_its_parents_checkpoint_is_pruned(tmp_path: Path) -> None:
    """The best model's export and the held-out score load a trial's model after its run:
    a trial that continued another must load from its own checkpoint alone, since its
    parent's is pruned once nothing runs from it (best_model.prune_checkpoints). KerasTuner's
    own load_model read the parent's file first: the default job failed on it."""
    searched = _search(tmp_path, reuse=True)
    continued = [
        t
        for t in _in_start_order(searched)
        if "tuner/trial_id" in t.hyperparameters.values and t.status == "COMPLETED"
    ]
    assert continued, "the schedule continues no trial: the test would prove nothing"
    trial = continued[-1]
    Path(checkpoint_path(searched, trial.hyperparameters.values["tuner/trial_id"])).unlink()
    hp = trial.hyperparameters.copy()
    hp.values.pop("tuner/trial_id")
    hypermodel = DenseHyperModel(input_width=FEATURES, head=HEAD, seed=SEED)
    cache = searched.model_cache
    assert cache is not None
    assert cache.padding is not None
    padded = hypermodel.build_padded(hp, cache.padding)
    padded.load_weights(checkpoint_path(searched, trial.trial_id))
    fresh = real_width_model(hypermodel, padded, hp)

    # With the cache, and with model reuse off (a process reloading the finished search:
    # no trial left to train), which still builds the padded networks the checkpoints hold.
    for tuner in (searched, _search(tmp_path, reuse=False)):
        loaded = tuner.load_model(tuner.oracle.trials[trial.trial_id])
        assert [layer.shape for layer in loaded.weights] == [w.shape for w in fresh.weights]
        for a, b in zip(loaded.get_weights(), fresh.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
