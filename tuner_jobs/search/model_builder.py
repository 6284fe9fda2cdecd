"""The dense network a search tunes, and how it is fed (tf.data, batch size from the trial)."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tuner_jobs.search.checkpoint import buffer_best_epoch
from tuner_jobs.search.data import Head
from tuner_jobs.search.hyperparameters import units_name
from tuner_jobs.search.padded import (
    PaddedUnits,
    VariableL2,
    assign_configuration,
    is_padded,
    padded_kernel,
    python_random_kept,
    real_widths,
)

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
    "nadam": keras.optimizers.Nadam,
    "adagrad": keras.optimizers.Adagrad,
}

# Batches run per call into the compiled train/test function. On small tabular data a
# step's arithmetic takes microseconds and the Python round trip per call dominates, so
# several steps go per call (docs/benchmarks.md, "Figures that explain design choices").
# Callbacks see batch-level hooks every 32 steps; every callback the
# service uses (EarlyStopping, ReduceLROnPlateau, the recorder) works on epochs, and
# TerminateOnNaN still sees the NaN (a running mean of the loss stays NaN).
STEPS_PER_EXECUTION = 32


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Cached, batched, prefetched input: on small tabular data about a third faster than arrays."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class DenseHyperModel(kt.HyperModel):
    """A stack of Dense layers over the preprocessed features; every knob comes from `hp`."""

    # Hyperparameters that leave the network's graph as it is: they set where its weights
    # start, the learning rate (a variable of the optimizer) and the batches' length (the
    # traced functions take batches of any length). Trials that differ only in these can
    # train one built, compiled and traced model (tuner_jobs.search.model_reuse).
    GRAPH_FREE = frozenset({"kernel_initializer", "learning_rate", "batch_size"})

    # With padded networks (tuner_jobs.search.padded), these too: the widths, the dropout
    # rate and the L2 factor are values of the padded network's variables.
    PADDED_FREE = frozenset({"dropout", "l2"})
    # What a network without hidden layers does not use.
    NO_HIDDEN_FREE = frozenset({"activation", "batch_norm", "dropout", "l2"})

    def __init__(self, *, input_width: int, head: Head, seed: int | None) -> None:
        super().__init__(name="dense", tunable=True)
        self.input_width = input_width
        self.head = head
        self.seed = seed

    def graph_free(self, hp: kt.HyperParameters, *, padded: bool) -> frozenset[str]:
        """The hyperparameters trial `hp`'s network's graph does not depend on."""
        layers = int(hp.get("num_layers"))
        free = set(self.GRAPH_FREE)
        if padded:
            free |= self.PADDED_FREE | {units_name(layer) for layer in range(layers)}
        if layers == 0:
            free |= self.NO_HIDDEN_FREE
        return frozenset(free)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        return self._compiled(self._network(hp, None), hp)

    def build_padded(self, hp: kt.HyperParameters, widths: tuple[int, ...]) -> keras.Model:
        """What `build(hp)` gives, but with each hidden layer `widths[i]` wide and its
        units past trial `hp`'s masked out (tuner_jobs.search.padded): the same outputs,
        the same training, and a graph any trial of the same family can train."""
        # Its layers are made with zeros, drawing no seed: the real blocks are then drawn
        # by `reinitialize` from where Python's generator stands, as `build` draws them.
        with python_random_kept():
            model = self._compiled(self._network(hp, widths), hp)
        self.reinitialize(model, hp)
        return model

    def _network(self, hp: kt.HyperParameters, widths: tuple[int, ...] | None) -> keras.Model:
        l2 = float(hp.get("l2"))
        if widths is not None:
            regularizer: keras.regularizers.Regularizer | None = VariableL2(l2)
        else:
            regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
        dropout = float(hp.get("dropout"))
        initializer = hp.get("kernel_initializer") if widths is None else "zeros"
        inputs = keras.Input(shape=(self.input_width,), name="features")
        x = inputs
        for layer in range(int(hp.get("num_layers"))):
            x = keras.layers.Dense(
                int(hp.get(units_name(layer))) if widths is None else widths[layer],
                kernel_initializer=initializer,
                kernel_regularizer=regularizer,
            )(x)
            if hp.get("batch_norm"):
                x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation(hp.get("activation"))(x)
            if widths is not None:
                x = PaddedUnits(widths[layer], seed=self.seed)(x)
            elif dropout > 0:
                x = keras.layers.Dropout(dropout, seed=self.seed)(x)
        outputs = keras.layers.Dense(
            self.head.units,
            activation=self.head.activation,
            kernel_initializer="glorot_uniform" if widths is None else "zeros",
        )(x)
        if self.head.activation is None:
            outputs = keras.layers.Rescaling(
                scale=self.head.target_std, offset=self.head.target_mean, name="target_scale"
            )(outputs)
        return keras.Model(inputs, outputs)

    def _compiled(self, model: keras.Model, hp: kt.HyperParameters) -> keras.Model:
        optimizer = OPTIMIZERS[hp.get("optimizer")](learning_rate=float(hp.get("learning_rate")))
        # XLA doubles trial time on CPU for networks this small: keep it off.
        model.compile(
            optimizer=optimizer,
            loss=self.head.loss,
            metrics=list(self.head.metrics),
            jit_compile=False,
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        return model

    def reinitialize(self, model: keras.Model, hp: kt.HyperParameters) -> None:
        """Give `model`, built by `build` (or `build_padded`) for a trial of the same
        network (family) and already restored to the state it was built with, what
        `build(hp)` would give it fresh: each Dense kernel drawn by a new initializer, made
        in the order `build` makes them (each takes its seed from Python's RNG when it is
        made, so the same seeds are drawn and the weights are the same, bit for bit), and
        the trial's learning rate. A padded model's kernels are drawn with the real widths'
        shapes into zero kernels, and its masks, dropout rate and L2 factor set."""
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        padded = is_padded(model)
        fan_in = [self.input_width, *real_widths(hp)]
        fan_out = [*real_widths(hp), self.head.units]
        for index, layer in enumerate(dense):
            # The output layer keeps Keras's default initializer, as in `build`.
            name = "glorot_uniform" if layer is dense[-1] else hp.get("kernel_initializer")
            initializer = keras.initializers.get(name)
            layer.kernel_initializer = initializer  # what the saved model's config says
            if padded:
                block = initializer((fan_in[index], fan_out[index]), layer.kernel.dtype)
                layer.kernel.assign(padded_kernel(tuple(layer.kernel.shape), block))
            else:
                layer.kernel.assign(initializer(layer.kernel.shape, layer.kernel.dtype))
        if padded:
            assign_configuration(model, hp)
        model.optimizer.learning_rate.assign(float(hp.get("learning_rate")))

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):  # type: ignore[no-untyped-def]
        batch_size = int(hp.get("batch_size"))
        train = make_dataset(x, y, batch_size, shuffle_seed=self.seed)
        val = make_dataset(*validation_data, batch_size) if validation_data is not None else None
        # The dataset is already shuffled; Keras would warn that shuffle=True is ignored.
        kwargs["shuffle"] = False
        kwargs["callbacks"] = buffer_best_epoch(kwargs.get("callbacks") or [])
        return model.fit(train, validation_data=val, **kwargs)
