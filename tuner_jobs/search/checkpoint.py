"""KerasTuner's best-epoch checkpoint, written once per fit instead of at every better epoch.

KerasTuner adds a `SaveBestEpoch` callback to every trial: each epoch that improves
the objective writes the model's weights (and optimizer and metric state) to an HDF5
file. Early in a trial nearly every epoch improves, and on small tabular data one such
write (Keras walks the whole model to save it) costs more CPU than the epoch it
follows. Here the state of the best epoch is kept in memory and written when `fit`
ends, to the same file: what KerasTuner later reads (the best model, a Hyperband
promotion, a resume) is byte for byte the checkpoint it would have written. A process
that dies mid-trial loses nothing either: an interrupted trial reruns from scratch.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tuner_jobs.search.keras_tuner_compat import SaveBestEpoch, write_checkpoint


class BestEpochInMemory(keras.callbacks.Callback):
    def __init__(self, checkpoint: SaveBestEpoch) -> None:
        super().__init__()
        # KerasTuner's own callback keeps the best value across executions of a trial
        # and knows where (and how, under a distribution strategy) to write.
        self.checkpoint = checkpoint
        self.snapshot: list[np.ndarray] | None = None

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.checkpoint.set_model(model)

    def _state(self) -> list[Any]:
        """Every variable `save_weights` writes: layers, optimizer, metrics."""
        model = self.model
        optimizer = model.optimizer.variables if model.optimizer is not None else []
        seen: dict[int, Any] = {}
        for variable in [*model.variables, *optimizer, *model.metrics_variables]:
            seen.setdefault(id(variable), variable)
        return list(seen.values())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        objective = self.checkpoint.objective
        if objective.has_value(logs):
            value = objective.get_value(logs)
            if not objective.better_than(value, self.checkpoint.best_value):
                return
            self.checkpoint.best_value = value
        # (Without the objective in the logs, KerasTuner saves every epoch: keep the last.)
        self.snapshot = [keras.ops.convert_to_numpy(v) for v in self._state()]

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.snapshot is None:
            return
        state = self._state()
        now = [keras.ops.convert_to_numpy(v) for v in state]
        for variable, value in zip(state, self.snapshot, strict=True):
            variable.assign(value)
        write_checkpoint(self.checkpoint)  # KerasTuner's own writer
        for variable, value in zip(state, now, strict=True):
            variable.assign(value)
        self.snapshot = None


def buffer_best_epoch(callbacks: list[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    """`callbacks` with KerasTuner's SaveBestEpoch replaced by its in-memory equivalent."""
    return [BestEpochInMemory(c) if isinstance(c, SaveBestEpoch) else c for c in callbacks]
