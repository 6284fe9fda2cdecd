"""Padded networks (tuner_jobs.search.padded): one traced graph per network family, the same
training as the network of the real widths, and plain Keras at the real widths handed out."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from app.search.search_space import ACTIVATIONS, effective_search_space
from tuner_jobs.search.data import Head
from tuner_jobs.search.hyperparameters import build_hyperparameters, units_name
from tuner_jobs.search.keras_tuner_compat import checkpoint_path
from tuner_jobs.search.model_builder import OPTIMIZERS, DenseHyperModel
from tuner_jobs.search.model_reuse import ModelCache
from tuner_jobs.search.padded import (
    PADDING_FILE,
    PaddedUnits,
    PaddingChoice,
    choose_padding,
    hyperband_epochs_per_network,
    real_width_model,
)
from tuner_jobs.search.tuners import RecordingRandomSearch

FEATURES, SEED = 6, 3
WIDTHS = (16, 16, 16)
BINARY = Head(1, "sigmoid", "binary_crossentropy", ("accuracy",))
CLASSES = Head(3, "softmax", "sparse_categorical_crossentropy", ("accuracy",))
REGRESSION = Head(1, None, "mse", ("mae",), target_mean=2.0, target_std=3.0)


def _hp(layers: int, units: list[int], **values: Any) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    config = {
        "num_layers": layers,
        "activation": "relu",
        "dropout": 0.0,
        "kernel_initializer": "glorot_uniform",
        "optimizer": "adam",
        "learning_rate": 3e-3,
        "batch_size": 32,
        "l2": 0.0,
        "batch_norm": False,
        **{units_name(layer): width for layer, width in enumerate(units)},
        **values,
    }
    for name, value in config.items():
        hp.Fixed(name, value)
    return hp


def _data(head: Head, rows: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype("float32")
    signal = x[:, 0] + 0.5 * x[:, 1] ** 2 - x[:, 2]
    if head.activation is None:
        return x, (2.0 + 3.0 * signal).astype("float32")
    if head.units == 1:
        return x, (signal > 0.4).astype("float32")
    return x, np.digitize(signal, [-0.5, 0.8]).astype("float32")


def _train(hypermodel: DenseHyperModel, hp: kt.HyperParameters, *, padded: bool) -> Any:
    x, y = _data(hypermodel.head)
    keras.utils.set_random_seed(SEED)  # as each trial's start does
    model = hypermodel.build_padded(hp, WIDTHS) if padded else hypermodel.build(hp)
    history = hypermodel.fit(
        hp, model, x[:120], y[:120], validation_data=(x[120:], y[120:]), epochs=4, verbose=0
    )
    return model, history.history


CONFIGURATIONS = [
    pytest.param(BINARY, _hp(2, [4, 16], activation="tanh", dropout=0.2), id="tanh-dropout"),
    pytest.param(
        BINARY,
        _hp(3, [8, 4, 16], dropout=0.1, l2=1e-3, batch_norm=True, optimizer="rmsprop"),
        id="relu-l2-batchnorm-rmsprop",
    ),
    pytest.param(
        REGRESSION,
        _hp(1, [8], activation="sigmoid", dropout=0.3, l2=1e-2, optimizer="adamw"),
        id="sigmoid-regression-adamw",
    ),
    pytest.param(
        CLASSES, _hp(2, [16, 2], activation="elu", optimizer="nadam"), id="elu-3-classes-nadam"
    ),
    pytest.param(CLASSES, _hp(0, [], optimizer="sgd"), id="no-hidden-layer"),
]


@pytest.mark.slow  # trains each network twice, in this process
@pytest.mark.parametrize(("head", "hp"), CONFIGURATIONS)
def test_a_padded_network_trains_as_the_network_of_its_real_widths(
    head: Head, hp: kt.HyperParameters
) -> None:
    """Same seed: the same initial weights, the same dropped units (dropout draws its mask
    for the real units from the same generator state as Keras's Dropout), so the same
    curves and predictions, up to the order of float additions over the padded zeros."""
    hypermodel = DenseHyperModel(input_width=FEATURES, head=head, seed=SEED)
    padded, padded_curves = _train(hypermodel, hp, padded=True)
    real, real_curves = _train(hypermodel, hp, padded=False)
    assert padded_curves.keys() == real_curves.keys()
    for name, values in real_curves.items():
        np.testing.assert_allclose(padded_curves[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    x, _ = _data(head)
    expected = real.predict(x, verbose=0)
    np.testing.assert_allclose(padded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    handed = real_width_model(hypermodel, padded, hp)
    np.testing.assert_allclose(handed.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert [w.shape for w in handed.weights] == [w.shape for w in real.weights]
    # (A bias under batch normalization gets only rounding noise as gradient: near zero.)
    for got, want in zip(handed.get_weights(), real.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _dense(model: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.slow  # trains a network per activation, in this process
@pytest.mark.parametrize(
    ("activation", "optimizer"),
    # Every activation the search space allows, each optimizer among them.
    [(a, list(OPTIMIZERS)[i % len(OPTIMIZERS)]) for i, a in enumerate(ACTIVATIONS)],
)
def test_masked_units_stay_exactly_zero(activation: str, optimizer: str) -> None:
    """Whatever the activation (sigmoid(0) is not 0) and the optimizer, a masked unit
    outputs 0, its weights get 0 gradient and stay 0, through L2 and batch normalization."""
    hypermodel = DenseHyperModel(input_width=FEATURES, head=BINARY, seed=SEED)
    units = [5, 3]
    hp = _hp(2, units, activation=activation, optimizer=optimizer, l2=1e-2, dropout=0.2)
    hp.values["batch_norm"] = activation == "sigmoid"
    model, _ = _train(hypermodel, hp, padded=True)
    x, y = _data(BINARY)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    gradients = tape.gradient(loss, [layer.kernel for layer in _dense(model)])
    fan_in = [FEATURES, *units]
    for layer, gradient, rows, columns in zip(
        _dense(model), gradients, fan_in, [*units, 1], strict=True
    ):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        gradient = keras.ops.convert_to_numpy(gradient)
        for values in (kernel, gradient):
            assert not values[rows:].any(), layer.name
            assert not values[:, columns:].any(), layer.name
        assert not keras.ops.convert_to_numpy(layer.bias)[columns:].any()
    hidden = keras.Model(
        model.input, [layer.output for layer in model.layers if isinstance(layer, PaddedUnits)]
    )
    for outputs, width in zip(hidden(x, training=True), units, strict=True):
        assert not keras.ops.convert_to_numpy(outputs)[:, width:].any()


def _traces(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts PaddedUnits' Python code run in training: once per traced train function."""
    traced: list[int] = []
    call = PaddedUnits.call

    def counting(self: PaddedUnits, inputs: Any, training: bool | None = None) -> Any:
        if training:
            traced.append(1)
        return call(self, inputs, training=training)

    monkeypatch.setattr(PaddedUnits, "call", counting)
    return traced


def test_one_traced_graph_per_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other widths, dropout rate and L2 factor: the same model, not traced again."""
    traced = _traces(monkeypatch)
    hypermodel = DenseHyperModel(input_width=FEATURES, head=BINARY, seed=SEED)
    tuner = SimpleNamespace(hypermodel=hypermodel)
    cache = ModelCache()
    cache.pad(WIDTHS)
    x, y = _data(BINARY)
    first = _hp(2, [4, 16])
    model = cache.model_for(tuner, first)
    hypermodel.fit(first, model, x, y, epochs=1, verbose=0)
    after_first = len(traced)
    assert after_first > 0
    for units, dropout, l2, batch in [([16, 2], 0.3, 1e-3, 64), ([8, 8], 0.1, 0.0, 128)]:
        hp = _hp(2, units, dropout=dropout, l2=l2, batch_size=batch, learning_rate=1e-2)
        assert cache.model_for(tuner, hp) is model
        hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    assert len(traced) == after_first
    assert (cache.builds, cache.reuses) == (1, 2)
    # Another family (the activation changes the program): its own model.
    assert cache.model_for(tuner, _hp(2, [4, 16], activation="tanh")) is not model
    # No hidden layer: activation, dropout and L2 change nothing.
    bare = cache.model_for(tuner, _hp(0, []))
    assert cache.model_for(tuner, _hp(0, [], activation="tanh", dropout=0.4)) is bare


def _space(units: dict[str, Any] | None = None, **overrides: Any) -> kt.HyperParameters:
    space = dict(overrides)
    if units is not None:
        space["units"] = units
    return build_hyperparameters(effective_search_space(space, features=30))


def test_a_small_table_pads_and_a_large_one_with_a_wide_range_does_not() -> None:
    # The default job on the 569-row breast-cancer table: 455 rows in 5 folds, Hyperband.
    small = choose_padding(
        _space(),
        input_width=30,
        outputs=1,
        training_rows=4 * 455,
        validation_rows=455,
        epochs=hyperband_epochs_per_network(30, 3),
    )
    assert small.widths == (128, 128, 128), small
    assert small.extra_s < small.saved_s
    wide = _space({"type": "pow2", "min": 16, "max": 1024})
    large = choose_padding(
        wide,
        input_width=30,
        outputs=1,
        training_rows=160_000,
        validation_rows=40_000,
        epochs=hyperband_epochs_per_network(30, 3),
    )
    assert large.widths is None, large
    assert large.extra_s > large.saved_s
    # One width, one dropout rate: every configuration of a family is its first.
    fixed = _space({"type": "fixed", "value": 32}, dropout={"type": "fixed", "value": 0.0})
    assert (
        choose_padding(
            fixed, input_width=30, outputs=1, training_rows=100, validation_rows=20, epochs=3
        ).widths
        is None
    )


def test_hyperband_trains_few_epochs_per_new_configuration() -> None:
    # KerasTuner's schedule for max_epochs 30, factor 3: 4 brackets.
    assert 5 < hyperband_epochs_per_network(30, 3) < 15
    assert hyperband_epochs_per_network(1, 3) == 1


def test_the_choice_is_kept_whole(tmp_path: Path) -> None:
    choice = PaddingChoice((32, 16), 0.1, 0.8, "why")
    choice.save(tmp_path / PADDING_FILE)
    assert PaddingChoice.load(tmp_path / PADDING_FILE) == choice
    (tmp_path / PADDING_FILE).write_text("{")
    assert PaddingChoice.load(tmp_path / PADDING_FILE) is None


class _NoRecorder:
    def trial_started(self, *args: Any, **kwargs: Any) -> None: ...
    def epoch_ended(self, *args: Any, **kwargs: Any) -> None: ...
    def trial_ended(self, *args: Any, **kwargs: Any) -> None: ...
    def completed_curves(self, *args: Any) -> list[Any]:
        return []


class _Never:
    def is_set(self) -> bool:
        return False


@pytest.mark.slow
def test_a_padded_search_hands_out_plain_keras_at_real_widths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keras.utils.set_random_seed(SEED)
    x, y = _data(BINARY)
    one_family = {
        "num_layers": {"type": "int", "min": 2, "max": 2},
        "activation": {"type": "fixed", "value": "relu"},
        "optimizer": {"type": "fixed", "value": "adam"},
    }
    space = effective_search_space(one_family, features=FEATURES)
    tuner = RecordingRandomSearch(
        hypermodel=DenseHyperModel(input_width=FEATURES, head=BINARY, seed=SEED),
        objective=kt.Objective("val_accuracy", "max"),
        hyperparameters=build_hyperparameters(space),
        tune_new_entries=False,
        allow_new_entries=False,
        seed=SEED,
        max_trials=3,
        directory=str(tmp_path),
        project_name="project",
        recorder=_NoRecorder(),
        stop=_Never(),
        model_cache=ModelCache(),
        rng_seed=SEED,
    )
    with caplog.at_level(logging.INFO, logger="tuner_jobs.search.tuners"):
        tuner.search(x[:120], y[:120], validation_data=(x[120:], y[120:]), epochs=2, verbose=0)
    assert "networks padded to the space's widest" in caplog.text  # the job's log says so
    choice = PaddingChoice.load(tmp_path / "project" / PADDING_FILE)
    assert choice is not None
    assert choice.widths is not None
    cache = tuner.model_cache
    assert cache is not None
    assert cache.builds == 1 < len(tuner.oracle.trials)
    for trial in tuner.oracle.trials.values():
        model = tuner.load_model(trial)
        hp = trial.hyperparameters
        widths = [int(layer.units) for layer in _dense(model)]
        assert widths == [hp.get("units_0"), hp.get("units_1"), 1]
        assert not any(isinstance(layer, PaddedUnits) for layer in model.layers)
        # It predicts what the trial's padded network, loaded from its checkpoint, does.
        padded = cache.model_for(tuner, hp)
        padded.load_weights(checkpoint_path(tuner, trial.trial_id))
        np.testing.assert_allclose(
            model.predict(x, verbose=0), padded.predict(x, verbose=0), rtol=1e-5, atol=1e-6
        )
        path = tmp_path / f"{trial.trial_id}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
