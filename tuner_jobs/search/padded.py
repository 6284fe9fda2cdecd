"""Networks padded to the search space's widest: one traced graph per network family.

TensorFlow traces a model's train and test functions once per model (most of a new
network's cost on a small table: bench-floor, docs/benchmarks.md), and a model's graph
holds its shapes: every width makes a new one. A padded network has, per hidden layer,
the space's largest width for that layer, and a trial's own widths are values of
variables: a 0/1 mask multiplied in after the activation (so a masked unit outputs
exactly 0, whatever the activation, and passes back exactly 0 gradient to its kernel
column and bias), the dropout rate and the L2 factor likewise. Trials that agree on the
number of layers, the activation, the optimizer and batch normalization then train one
traced model (tuner_jobs.search.model_reuse): a new configuration is a few assigns, not
a trace.

The masked parts stay exactly zero: the kernel columns and biases of masked units start
at zero and get zero gradient (so no optimizer moves them: Adam's and RMSprop's steps
are 0/(0 + epsilon), weight decay scales zero), and the next layer's rows for them start
at zero and see zero inputs. So the padded network computes what the network of the real
widths computes, the L2 penalty included, up to the order of float additions; the real
block of each kernel is drawn with the real shape, from the same seeds (model_builder).
Dropout draws its mask for the real units only, from the same seed generator state as
Keras's Dropout: the same units are dropped.

What a trial hands out is the network of its real widths (`real_width_model`), plain
Keras, its weights sliced from the padded one. Whether a search pads at all is a cost:
`choose_padding` weighs the padding's extra arithmetic against the traces it saves.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf
from keras_tuner.engine import hyperparameters as kt_hp

from tuner_jobs.search.hyperparameters import units_name

# A new network's building, compiling and tracing, which padding saves: bench-floor's
# "new network" fixed cost on an idle machine before padding (docs/benchmarks.md).
TRACE_S = 0.9
# Seconds per multiply-add of a training step, per row and weight: the slope of a padded
# network's epoch time over its widths (docs/benchmarks.md, bench-floor), taken for one
# thread, as a search process may have; an error towards real widths costs no more than
# a search cost before padding.
SECONDS_PER_MAC = 1.0e-10
# A training step's arithmetic per row and weight (forward, two backward products), and a
# validation row's (forward only).
TRAIN_MACS, VALIDATE_MACS = 3, 1
# In each search's KerasTuner project directory: the choice, taken once per job, so that a
# resumed search, each tuner of a parallel job and the export read checkpoints of one shape.
PADDING_FILE = "padding.json"


@dataclass(frozen=True)
class PaddingChoice:
    """Whether a search pads (`widths`: the padded width of each hidden layer; None: each
    trial's network has its real widths), and the estimates per new network it came from."""

    widths: tuple[int, ...] | None
    extra_s: float  # the padding's extra arithmetic, per new configuration
    saved_s: float  # the tracing it saves, per new configuration
    reason: str

    def save(self, path: Path) -> None:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(asdict(self)))
        os.replace(partial, path)  # a reader sees the whole choice or none

    @classmethod
    def load(cls, path: Path) -> PaddingChoice | None:
        try:
            data = json.loads(path.read_text())
            widths = data["widths"]
            return cls(
                widths=None if widths is None else tuple(int(w) for w in widths),
                extra_s=float(data["extra_s"]),
                saved_s=float(data["saved_s"]),
                reason=str(data["reason"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _values(param: Any) -> list[Any] | None:
    """Every value a hyperparameter takes; None for a continuous range (unbounded count)."""
    if isinstance(param, kt_hp.Fixed):
        return [param.value]
    if isinstance(param, kt_hp.Choice):
        return list(param.values)
    if isinstance(param, kt_hp.Boolean):
        return [False, True]
    if isinstance(param, kt_hp.Int):
        low, high, step = param.min_value, param.max_value, param.step
        if param.sampling == "log":
            step = step or 2
            values, value = [], low
            while value <= high:
                values.append(value)
                value *= step
            return values
        return list(range(low, high + 1, step or 1))
    if isinstance(param, kt_hp.Float):
        if param.step is None:
            return None
        count = int(round((param.max_value - param.min_value) / param.step)) + 1
        return [param.min_value + i * param.step for i in range(count)]
    return None


def _space(hp: kt.HyperParameters) -> dict[str, Any]:
    return {param.name: param for param in hp.space}


def space_widths(hp: kt.HyperParameters) -> tuple[int, ...] | None:
    """The largest width each hidden layer takes in the space; None when the space holds no
    hidden layer or a width it cannot bound."""
    space = _space(hp)
    layers = _values(space["num_layers"]) if "num_layers" in space else None
    if not layers or max(layers) < 1:
        return None
    widths = []
    for layer in range(int(max(layers))):
        values = _values(space[units_name(layer)]) if units_name(layer) in space else None
        if not values:
            return None
        widths.append(int(max(values)))
    return tuple(widths)


def hyperband_epochs_per_network(max_epochs: int, factor: int) -> float:
    """Epochs trained per new configuration in a Hyperband iteration: all its epochs (a
    continued trial trains on from its parent, in its parent's model) over its new
    configurations. Bracket sizes and rungs as KerasTuner's HyperbandOracle (1.4.x) makes
    them, its smallest rung at 1 epoch."""
    if max_epochs < 1 or factor < 2:
        return float(max(max_epochs, 1))
    brackets, rung = 0, float(max_epochs)
    while rung >= 1:
        rung /= factor
        brackets += 1
    end = math.ceil(1 + math.log(max_epochs, factor))
    trained = new = 0.0
    for bracket in range(brackets):
        before = 0
        for round_num in range(bracket + 1):
            size = math.ceil(end / (bracket + 1) * factor ** (bracket - round_num))
            at = math.ceil(max_epochs / factor ** (bracket - round_num))
            trained += size * (at - before)
            new += size if round_num == 0 else 0
            before = at
    return trained / new


def choose_padding(
    hp: kt.HyperParameters,
    *,
    input_width: int,
    outputs: int,
    training_rows: int,
    validation_rows: int,
    epochs: float,
) -> PaddingChoice:
    """Pad when a new configuration's extra arithmetic (its rows x the padded widths' extra
    weights x its epochs) costs less than the tracing that padding saves it.

    `training_rows`, `validation_rows`: the rows one trial fits and scores per epoch,
    summed over its folds; `epochs`: per new configuration. The widths are taken as the
    search draws them, uniformly per layer among the space's values; the tracing is saved
    for the share of configurations that are new to their family."""
    widths = space_widths(hp)
    if widths is None:
        return PaddingChoice(None, 0.0, 0.0, "the space has no hidden layer to pad")
    space = _space(hp)
    layer_counts = [int(n) for n in _values(space["num_layers"]) or []]
    padded_macs = real_macs = 0.0
    configurations = 0.0
    for layers in layer_counts:
        means = [
            float(np.mean(_values(space[units_name(i)]) or [widths[i]])) for i in range(layers)
        ]
        fan_in_real, fan_in_padded = float(input_width), float(input_width)
        for layer in range(layers):
            real_macs += fan_in_real * means[layer]
            padded_macs += fan_in_padded * widths[layer]
            fan_in_real, fan_in_padded = means[layer], float(widths[layer])
        real_macs += fan_in_real * outputs
        padded_macs += fan_in_padded * outputs
        configurations += math.prod(
            len(_values(space[units_name(i)]) or [0]) for i in range(layers)
        )
    # Averaged over the layer counts, as the search draws them.
    extra_macs = (padded_macs - real_macs) / len(layer_counts)
    per_epoch = extra_macs * (TRAIN_MACS * training_rows + VALIDATE_MACS * validation_rows)
    extra_s = per_epoch * epochs * SECONDS_PER_MAC
    for name in ("dropout", "l2"):
        if name in space:
            count = _values(space[name])
            configurations *= len(count) if count is not None else math.inf
    # A family's first configuration is traced either way; the others are saved a trace.
    per_family = configurations / len(layer_counts)
    saved_s = TRACE_S * (1.0 - 1.0 / per_family) if per_family > 1 else 0.0
    if extra_s < saved_s:
        reason = "padding costs less arithmetic than the traces it saves"
        return PaddingChoice(widths, extra_s, saved_s, reason)
    reason = "padding would cost more arithmetic than the traces it saves"
    return PaddingChoice(None, extra_s, saved_s, reason)


@contextmanager
def python_random_kept() -> Iterator[None]:
    """Python's generator as it was before the block: Keras draws initializer and dropout
    seeds from it when a layer is made, and a padded build must leave it to the draws a
    build of the real widths makes (model_builder.DenseHyperModel.reinitialize)."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


@keras.saving.register_keras_serializable(package="tuner_service")
class VariableL2(keras.regularizers.Regularizer):
    """Keras's L2 penalty with its factor in a variable: a new factor is an assign."""

    def __init__(self, l2: float = 0.0) -> None:
        self.factor = keras.Variable(l2, trainable=False, dtype="float32", name="l2")

    def __call__(self, x: Any) -> Any:
        return keras.ops.cast(self.factor, dtype=x.dtype) * keras.ops.sum(keras.ops.square(x))

    def get_config(self) -> dict[str, Any]:
        return {"l2": float(keras.ops.convert_to_numpy(self.factor))}


@keras.saving.register_keras_serializable(package="tuner_service")
class PaddedUnits(keras.layers.Layer):
    """After a padded hidden layer's activation: its first `units` outputs are the layer's
    real units (dropout applies to them alone), the others are exactly zero."""

    def __init__(self, width: int, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width = int(width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)  # as keras.layers.Dropout's
        self.mask = self.add_weight(
            shape=(self.width,), initializer="ones", trainable=False, name="mask"
        )
        self.units = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.width), dtype="int32",
            trainable=False, name="units",
        )  # fmt: skip
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")

    def assign(self, units: int, rate: float) -> None:
        self.mask.assign(np.arange(self.width) < units)
        self.units.assign(units)
        self.rate.assign(rate)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = inputs * keras.ops.cast(self.mask, inputs.dtype)
        if not training:
            return x
        units = tf.convert_to_tensor(self.units)
        seed = self.seed_generator.next()
        # As Keras's TensorFlow backend casts a generator's int64 state for stateless ops.
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        kept = tf.nn.experimental.stateless_dropout(
            x[:, :units], rate=tf.cast(tf.convert_to_tensor(self.rate), x.dtype), seed=seed
        )
        return tf.concat([kept, x[:, units:]], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width": self.width, "seed": self.seed}


def is_padded(model: keras.Model) -> bool:
    return any(isinstance(layer, PaddedUnits) for layer in model.layers)


def real_widths(hp: kt.HyperParameters) -> list[int]:
    return [int(hp.get(units_name(layer))) for layer in range(int(hp.get("num_layers")))]


def assign_configuration(model: keras.Model, hp: kt.HyperParameters) -> None:
    """Give a padded `model` trial `hp`'s widths, dropout rate and L2 factor."""
    units = [layer for layer in model.layers if isinstance(layer, PaddedUnits)]
    for layer, width in zip(units, real_widths(hp), strict=True):
        layer.assign(width, float(hp.get("dropout")))
    for layer in model.layers:
        regularizer = getattr(layer, "kernel_regularizer", None)
        if isinstance(regularizer, VariableL2):
            regularizer.factor.assign(float(hp.get("l2")))


def padded_kernel(shape: tuple[int, ...], block: Any) -> np.ndarray:
    """A zero kernel of `shape` with `block` in its top-left corner."""
    kernel = np.zeros(shape, dtype="float32")
    block = keras.ops.convert_to_numpy(block)
    kernel[: block.shape[0], : block.shape[1]] = block
    return kernel


def _of(model: keras.Model, kind: type) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def real_width_model(hypermodel: Any, padded: keras.Model, hp: kt.HyperParameters) -> keras.Model:
    """The network of trial `hp`'s real widths, as `hypermodel.build(hp)` makes it (plain
    Keras, compiled), with the weights of `padded` sliced to those widths."""
    with python_random_kept():
        real = hypermodel.build(hp)
    for source, target in zip(
        _of(padded, keras.layers.Dense), _of(real, keras.layers.Dense), strict=True
    ):
        rows, columns = target.kernel.shape
        target.kernel.assign(keras.ops.convert_to_numpy(source.kernel)[:rows, :columns])
        target.bias.assign(keras.ops.convert_to_numpy(source.bias)[:columns])
    norms = zip(
        _of(padded, keras.layers.BatchNormalization),
        _of(real, keras.layers.BatchNormalization),
        strict=True,
    )
    for source, target in norms:
        for kept, into in zip(source.weights, target.weights, strict=True):
            into.assign(keras.ops.convert_to_numpy(kept)[: into.shape[0]])
    return real
