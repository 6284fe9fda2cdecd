"""Warm starts in the search: the oracle hands out the configurations resolved at
submission (the spec's `warm_start.configurations`, app.search.warm_start_resolution)
before its own.

Through the oracle, so that whatever asks it for trials gets them: a one-process search,
and every tuner of a parallel job (the chief holds the one oracle). Where each KerasTuner
oracle draws a new configuration (keras-tuner 1.4.8, keras_tuner/src/tuners/):

- RandomSearchOracle.populate_space, HyperbandOracle._random_trial (the first round of
  each new bracket) and BayesianOptimizationOracle's initial points call
  `Oracle._random_values()`: overridden here to return the next queued configuration;
- BayesianOptimizationOracle.populate_space, past its initial points, fits its Gaussian
  process instead: the queue goes first there too;
- GridSearchOracle.populate_space walks its grid from its own trials: the queue goes
  first, then the grid walks as if the warm-started trials were not there (a grid point
  one of them already ran runs again).

The queue keeps no state of its own: the next configuration is the first of the list
that none of the oracle's trials holds yet. A resumed oracle reloads its trials from the
project directory, so it neither repeats a configuration nor skips one; an interrupted
warm-started trial is rerun by KerasTuner's retry queue, as any other.

A warm-started trial carries ORIGIN_KEY (the job it came from) in its values, beside
Hyperband's `tuner/...` entries: it travels with the trial to every tuner (and over
gRPC), is saved in the trial's file, and is not a hyperparameter (not declared, so not
recorded among them, nor seen by the model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import keras_tuner as kt
from keras_tuner.engine import trial as trial_module

from app.search.warm_start_resolution import WarmStartConfiguration

ORIGIN_KEY = "warm_start/job_id"
_RUNNING = trial_module.TrialStatus.RUNNING


def warm_start_origin(values: Mapping[str, Any]) -> str | None:
    """The job a trial's configuration was replayed from, or None for the algorithm's own.
    A Hyperband trial that continues a warm-started one (`tuner/trial_id`) is Hyperband's
    choice: None."""
    if "tuner/trial_id" in values:
        return None
    origin = values.get(ORIGIN_KEY)
    return str(origin) if origin else None


def _configuration(values: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameter values, without the origin and Hyperband's bookkeeping."""
    return {k: v for k, v in values.items() if k != ORIGIN_KEY and not k.startswith("tuner/")}


def next_configuration(
    queue: Sequence[WarmStartConfiguration], trials: Iterable[Any]
) -> dict[str, Any] | None:
    """The values for the next trial from `queue`: the first configuration no trial of
    `trials` (KerasTuner Trials, finished or running) holds yet, with its origin; None
    when every one has been tried.

    The seam for any oracle (an Optuna sampler's included): call it first where the
    oracle draws a new configuration, as `next_warm_start(self)`."""
    tried = [_configuration(trial.hyperparameters.values) for trial in trials]
    for queued in queue:
        if queued.hyperparameters not in tried:
            return {**queued.hyperparameters, ORIGIN_KEY: queued.job_id}
    return None


def next_warm_start(oracle: Any) -> dict[str, Any] | None:
    """`next_configuration` for an oracle `install` gave a queue (None for any other)."""
    queue = getattr(oracle, "warm_start_queue", None)
    return next_configuration(queue, oracle.trials.values()) if queue else None


class WarmStartOracle:
    """Mixin for a KerasTuner oracle: random draws take the queue first."""

    warm_start_queue: Sequence[WarmStartConfiguration] = ()

    def _random_values(self) -> dict[str, Any] | None:
        values = next_warm_start(self)
        return values if values is not None else super()._random_values()  # type: ignore[misc]

    def _compute_values_hash(self, values: Mapping[str, Any]) -> str:
        # Without the origin: a random draw of a configuration a warm start already ran
        # is then a duplicate, which the oracle draws again.
        plain = {k: v for k, v in values.items() if k != ORIGIN_KEY}
        return super()._compute_values_hash(plain)  # type: ignore[misc,no-any-return]


class WarmStartBayesian(WarmStartOracle):
    def populate_space(self, trial_id: str) -> dict[str, Any]:
        values = next_warm_start(self)
        if values is not None:
            return {"status": _RUNNING, "values": values}
        return super().populate_space(trial_id)  # type: ignore[misc]


class WarmStartGrid(WarmStartOracle):
    def populate_space(self, trial_id: str) -> dict[str, Any]:
        values = next_warm_start(self)
        if values is not None:
            return {"status": _RUNNING, "values": values}
        # The grid finds its next point from its own trials (its first one from there
        # being none): hide the warm-started ones from it.
        warm = {
            trial_id
            for trial_id, trial in self.trials.items()  # type: ignore[attr-defined]
            if ORIGIN_KEY in trial.hyperparameters.values
        }
        self._populate_next = [t for t in self._populate_next if t not in warm]  # type: ignore[has-type]
        start_order = self.start_order  # type: ignore[has-type]
        self.start_order = [t for t in start_order if t not in warm]
        try:
            return super().populate_space(trial_id)  # type: ignore[misc]
        finally:
            self.start_order = start_order


@cache
def _with_warm_start(base: type) -> type:
    if issubclass(base, kt.oracles.GridSearchOracle):
        mixin: type = WarmStartGrid
    elif issubclass(base, kt.oracles.BayesianOptimizationOracle):
        mixin = WarmStartBayesian
    else:
        mixin = WarmStartOracle
    return type(f"WarmStart{base.__name__}", (mixin, base), {})


def install(oracle: Any, configurations: Sequence[WarmStartConfiguration]) -> None:
    """Make `oracle` hand out `configurations` first. A tuner of a parallel job other than
    the chief's holds a client of the chief's oracle, not an oracle: nothing to do there.

    KerasTuner's tuners build their oracle inside their own __init__ (there is no
    argument for its class), so the mixin is put under the oracle they built."""
    if not configurations or not isinstance(oracle, kt.Oracle):
        return
    if not isinstance(oracle, WarmStartOracle):
        oracle.__class__ = _with_warm_start(type(oracle))
    oracle.warm_start_queue = list(configurations)
