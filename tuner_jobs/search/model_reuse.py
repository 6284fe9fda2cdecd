"""Models built, compiled and traced once, trained again by every trial with the same network.

Most of a trial's cost on a small table is not its epochs: KerasTuner clears the Keras
session and runs the garbage collector, then builds and compiles a new model, whose
train and test functions TensorFlow traces again on the first batch, for every trial;
a Hyperband trial that continues one of the previous bracket's rebuilds the very same
network and loads its parent's checkpoint into it. Only some hyperparameters change the
network's graph (`DenseHyperModel.graph_free` lists those that do not: initializer,
learning rate, batch size), so trials that agree on the others can train one model.
With padded networks (tuner_jobs.search.padded, when `padding` is set: a search's cost
model chooses it) the widths, the dropout rate and the L2 factor are graph-free too, and
a model serves a whole network family (layers, activation, optimizer, normalization).

A model handed out again is given what a fresh build would give it, so that the search's
results for the same seed are those of KerasTuner's own build (TUNER_MODEL_REUSE=0):

- every variable (layers, optimizer, metrics, dropout seeds) back to its value when the
  model was built, then `DenseHyperModel.reinitialize`: kernels drawn by new
  initializers, made in build order, so the same seeds are drawn from Python's RNG as a
  fresh build draws (bit-identical weights; a padded model's in the real widths' corner
  of zero kernels), the trial's learning rate, and a padded model's widths, dropout rate
  and L2 factor;
- a Hyperband trial that continues another: its parent's checkpoint loaded, as
  KerasTuner's Hyperband does, layers only; its optimizer starts fresh, as it does in
  KerasTuner (whose newly built optimizer has no variables yet to load into).

The same path serves every caller of KerasTuner's `_try_build`: `Tuner.load_model` (the
best model's export, the holdout evaluation), each execution of a trial, and each fold
of a cross-validated trial (folds of one trial share one graph: all but the first get
the model the first traced). Checkpoints, trial and oracle files are written as
before (a padded search's hold its padded networks, which the search's every process
builds alike: tuners.RecordingTuner keeps the choice in the project directory), so a
resumed search reads what it always read; a fresh process starts with an empty cache,
and a miss builds as KerasTuner builds. What a trial hands out (`handed_out`) is
always the network of its real widths.

`TUNER_MODEL_REUSE=0` (Settings.model_reuse) turns it off: KerasTuner's own build.
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import keras
import keras_tuner as kt
import numpy as np

from tuner_jobs.search.hyperparameters import active_values
from tuner_jobs.search.keras_tuner_compat import checkpoint_path
from tuner_jobs.search.padded import is_padded, real_width_model

logger = logging.getLogger(__name__)

# Models kept per search process, least recently used out first. Hyperband's first
# bracket (max_epochs 30, factor 3) trains 27 configurations before it continues the
# best 9: 32 keeps every parent it may continue. A small network and its traced
# functions take about a MB (and the process is recycled every TUNER_RECYCLE_TRIALS).
CAPACITY = 32
# KerasTuner runs gc.collect() before every build. Here a cached model is alive, and the
# only models that die are those the cache evicts (their graphs held in reference cycles)
# and those a trial hands out: a collection every this many evictions frees the former
# without waiting for Python's collector. A padded search of the default space evicts
# none (its families fit in CAPACITY): a collection per build there would only free what
# Python's own collector frees anyway, at its cost (measured: docs/benchmarks.md).
COLLECT_EVERY = 10


class ReusableHyperModel(Protocol):
    def graph_free(self, hp: kt.HyperParameters, *, padded: bool) -> frozenset[str]: ...

    def build(self, hp: kt.HyperParameters) -> keras.Model: ...

    def build_padded(self, hp: kt.HyperParameters, widths: tuple[int, ...]) -> keras.Model: ...

    def reinitialize(self, model: keras.Model, hp: kt.HyperParameters) -> None: ...


def architecture_key(hp: kt.HyperParameters, graph_free: frozenset[str]) -> Hashable:
    """What decides the network's graph: every active hyperparameter but the graph-free
    ones (KerasTuner's bookkeeping, tuner/epochs and the like, is not among them).
    A hyperparameter the hypermodel does not list as graph-free is in the key. With
    padded networks the key is the network's family: its widths, dropout rate and L2
    factor are graph-free too."""
    values = active_values(hp)
    return tuple(sorted((k, repr(v)) for k, v in values.items() if k not in graph_free))


def _state(model: keras.Model) -> list[Any]:
    """Every variable of the model, its optimizer and its metrics, each once."""
    seen: dict[int, Any] = {}
    optimizer = model.optimizer.variables if model.optimizer is not None else []
    for variable in [*model.variables, *optimizer, *model.metrics_variables]:
        seen.setdefault(id(variable), variable)
    return list(seen.values())


@dataclass
class _Entry:
    model: keras.Model
    variables: list[Any]
    initial: list[np.ndarray]

    def restore(self) -> None:
        for variable, value in zip(self.variables, self.initial, strict=True):
            variable.assign(value)


@dataclass
class ModelCache:
    """Built models by architecture, least recently used first; `builds` and `reuses`
    count what `model_for` did (the tests and the benchmark read them)."""

    capacity: int = CAPACITY
    builds: int = 0
    reuses: int = 0
    evicted: int = 0
    # The padded width of each hidden layer (tuner_jobs.search.padded.choose_padding), or
    # None: each network has its trial's real widths.
    padding: tuple[int, ...] | None = None
    # Whether a search may choose padded networks (False: always their real widths).
    may_pad: bool = True
    _entries: OrderedDict[Hashable, _Entry] = field(default_factory=OrderedDict)

    def pad(self, widths: tuple[int, ...] | None) -> None:
        """Build padded networks of `widths` from now on (None: real widths)."""
        if widths != self.padding:
            self._entries.clear()
        self.padding = widths

    def model_for(self, tuner: Any, hp: kt.HyperParameters) -> keras.Model:
        """What KerasTuner's `Tuner._try_build(hp)` returns, from the cache when it can."""
        hypermodel: ReusableHyperModel = tuner.hypermodel
        key = architecture_key(hp, hypermodel.graph_free(hp, padded=self.padding is not None))
        entry = self._entries.get(key)
        if entry is None:
            entry = self._build(hypermodel, hp, key)
        else:
            self._entries.move_to_end(key)
            entry.restore()
            hypermodel.reinitialize(entry.model, hp)
            self.reuses += 1
        if "tuner/trial_id" in hp.values:  # as KerasTuner's Hyperband._build_hypermodel asks
            _continue_from(entry.model, checkpoint_path(tuner, hp.values["tuner/trial_id"]))
        return entry.model

    def _build(self, hypermodel: ReusableHyperModel, hp: kt.HyperParameters, key: Hashable):  # type: ignore[no-untyped-def]
        # Keras's name counters start over, as KerasTuner has them at every build: layers
        # are named "dense", "dense_1" in every model a trial hands out (once per network,
        # or per family when padded). KerasTuner's gc.collect() is not run: a model in the
        # cache is alive, and those that leave it are collected below.
        keras.backend.clear_session(free_memory=False)
        if self.padding is not None:
            model = hypermodel.build_padded(hp, self.padding)
        else:
            model = hypermodel.build(hp)
        if not isinstance(model, keras.Model):
            raise kt.errors.FatalTypeError(f"build() returned {type(model)}, not a Keras model")
        # Its variables now, not at the first batch: the state a reuse restores.
        model.optimizer.build(model.trainable_variables)
        variables = _state(model)
        entry = _Entry(model, variables, [keras.ops.convert_to_numpy(v) for v in variables])
        self._entries[key] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evicted += 1
            if self.evicted % COLLECT_EVERY == 0:
                gc.collect()
        self.builds += 1
        return entry

    def handed_out(self, tuner: Any, model: keras.Model, hp: kt.HyperParameters) -> keras.Model:
        """What a trial hands out of `model` (its network as `model_for` gave it, with the
        trial's weights): the network of its real widths, weights sliced from a padded one,
        plain Keras; `model` itself when it is not padded."""
        if not is_padded(model):
            return model
        keras.backend.clear_session(free_memory=False)  # its layers named as a build's
        return real_width_model(tuner.hypermodel, model, hp)


def _continue_from(model: keras.Model, checkpoint: str) -> None:
    """Hyperband's continuation: the parent's weights at its best epoch, a fresh optimizer."""
    optimizer = model.optimizer.variables
    fresh = [keras.ops.convert_to_numpy(v) for v in optimizer]
    model.load_weights(checkpoint)
    for variable, value in zip(optimizer, fresh, strict=True):
        variable.assign(value)
