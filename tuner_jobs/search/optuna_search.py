"""The tuner side of Optuna's samplers: builds the OptunaOracle, measures the objectives
training does not log (model_params, predict_latency_ms) and names each trial's objective
values for the recorder.

A mixin for a RecordingTuner over `keras_tuner.Tuner` (tuner_jobs.search.tuners): KerasTuner's
tuners take the oracle's arguments and build their own oracle; this one does the same
with an OptunaOracle. The measured values join each fit's History as if Keras had logged
them at every epoch, so KerasTuner reports them to the oracle with the best epoch's
metrics: over gRPC too, for the tuners of a parallel job, and saved in the trial's file,
where a resumed oracle finds them.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, ClassVar

import keras
import numpy as np

from app.search.objectives import MEASURED
from tuner_jobs.search.optuna_oracle import OptunaOracle, objective_values

# The service measures prediction time on a batch of this many rows, this many times
# (after one untimed call that builds the model's call path), and keeps the median.
LATENCY_ROWS = 256
LATENCY_REPEATS = 7


def trainable_parameters(model: keras.Model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def predict_latency_ms(model: keras.Model, x: np.ndarray) -> float:
    """Median milliseconds to predict LATENCY_ROWS rows of `x` (repeated when it has fewer),
    as the service's prediction process calls a model."""
    rows = np.resize(np.asarray(x), (LATENCY_ROWS, *np.shape(x)[1:])).astype(np.float32)
    keras.ops.convert_to_numpy(model(rows, training=False))
    times = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        keras.ops.convert_to_numpy(model(rows, training=False))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def _add_measured(results: Any, measured: dict[str, float]) -> None:
    """Put the measured values into what run_trial returns (histories, or metric dicts)."""
    for result in results if isinstance(results, list) else [results]:
        if isinstance(result, keras.callbacks.History):
            epochs = len(next(iter(result.history.values()), [])) or 1
            result.history.update({k: [v] * epochs for k, v in measured.items()})
        elif isinstance(result, dict):
            result.update(measured)


class OptunaSearch:
    """Mixin (before RecordingTuner, over keras_tuner.Tuner): set `sampler` in the subclass."""

    sampler: ClassVar[str]

    def __init__(
        self,
        hypermodel: Any = None,
        *,
        objective: Any,
        max_trials: int | None = None,
        seed: int | None = None,
        hyperparameters: Any = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        objectives = objective if isinstance(objective, list) else [objective]
        # On the tuner, not only the oracle: a tuner of a parallel job holds a client of
        # the chief's oracle, and measures and names the objectives itself.
        self.objective_names = [o.name for o in objectives]
        self._measured = [name for name in self.objective_names if name in MEASURED]
        self._trained: dict[str, keras.Model] = {}
        oracle = OptunaOracle(
            sampler=self.sampler,
            objectives=[(o.name, o.direction) for o in objectives],
            objective=objectives[0],
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)  # type: ignore[call-arg]

    def on_epoch_end(self, trial, model, epoch, logs=None):  # type: ignore[no-untyped-def]
        if self._measured:
            self._trained[trial.trial_id] = model  # the trial's model, to measure after fit
        super().on_epoch_end(trial, model, epoch, logs)  # type: ignore[misc]

    def run_trial(self, trial: Any, *fit_args: Any, **fit_kwargs: Any) -> Any:
        try:
            results = super().run_trial(trial, *fit_args, **fit_kwargs)  # type: ignore[misc]
            model = self._trained.get(trial.trial_id)
            if self._measured and model is not None:
                x = fit_args[0] if fit_args else fit_kwargs["x"]
                measured = {
                    "model_params": float(trainable_parameters(model)),
                    "predict_latency_ms": predict_latency_ms(model, x),
                }
                _add_measured(results, {name: measured[name] for name in self._measured})
            return results
        finally:
            self._trained.pop(trial.trial_id, None)

    def trial_objectives(self, trial: Any) -> dict[str, float | None] | None:
        """Each objective's value for a COMPLETED trial of a multi-objective job."""
        if len(self.objective_names) < 2 or trial.status != "COMPLETED":
            return None
        values = objective_values(trial, self.objective_names)
        return dict(zip(self.objective_names, values, strict=True))
