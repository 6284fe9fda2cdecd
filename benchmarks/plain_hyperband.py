"""The baseline of `make bench-speed`: a plain KerasTuner Hyperband script, as the guide
writes one (numpy arrays, `validation_data`, EarlyStopping on val_loss, the batch size
tuned in `HyperModel.fit`), over the service's own search space for the table.

    python benchmarks/plain_hyperband.py rows.npz space.json seed workdir

`rows.npz`: x, y (0/1), x_val, y_val, already standardized; `space.json`: the
KerasTuner HyperParameters config of the service's default space for the table (what
its API exports). Prints one JSON line: when the imports and the search ended
(time.monotonic()), the best val_accuracy, and each trial's configuration, epochs and
wall time (timed by the trial hooks, as the service's recorder times its trials).
"""

from __future__ import annotations

import json
import sys
import time

import keras
import keras_tuner
import numpy as np

IMPORTED_AT = time.monotonic()
MAX_EPOCHS, FACTOR = 30, 3
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
    "nadam": keras.optimizers.Nadam,
    "adagrad": keras.optimizers.Adagrad,
}


class DenseModel(keras_tuner.HyperModel):
    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.inputs = inputs

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.Input(shape=(self.inputs,))])
        l2 = hp.get("l2")
        for i in range(hp.get("num_layers")):
            model.add(
                keras.layers.Dense(
                    hp.get(f"units_{i}"),
                    kernel_initializer=hp.get("kernel_initializer"),
                    kernel_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None,
                )
            )
            if hp.get("batch_norm"):
                model.add(keras.layers.BatchNormalization())
            model.add(keras.layers.Activation(hp.get("activation")))
            if hp.get("dropout") > 0:
                model.add(keras.layers.Dropout(hp.get("dropout")))
        model.add(keras.layers.Dense(1, activation="sigmoid"))
        model.compile(
            optimizer=OPTIMIZERS[hp.get("optimizer")](learning_rate=hp.get("learning_rate")),
            loss="binary_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):  # type: ignore[no-untyped-def]
        return model.fit(*args, batch_size=hp.get("batch_size"), **kwargs)


class TimedHyperband(keras_tuner.Hyperband):
    """Hyperband, with each trial's wall time noted (measurement only)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.trial_s: dict[str, float] = {}
        self.epochs: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def on_epoch_end(self, trial, model, epoch, logs=None):  # type: ignore[no-untyped-def]
        self.epochs[trial.trial_id] = self.epochs.get(trial.trial_id, 0) + 1
        super().on_epoch_end(trial, model, epoch, logs)

    def on_trial_begin(self, trial):  # type: ignore[no-untyped-def]
        self.trial_s[trial.trial_id] = time.monotonic()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):  # type: ignore[no-untyped-def]
        super().on_trial_end(trial)
        self.trial_s[trial.trial_id] = time.monotonic() - self.trial_s[trial.trial_id]


def main(rows: str, space: str, seed: str, workdir: str) -> None:
    data = np.load(rows)
    keras.utils.set_random_seed(int(seed))
    hp = keras_tuner.HyperParameters.from_config(json.loads(open(space).read()))
    tuner = TimedHyperband(
        DenseModel(data["x"].shape[1]),
        hyperparameters=hp,
        tune_new_entries=False,
        objective="val_accuracy",
        max_epochs=MAX_EPOCHS,
        factor=FACTOR,
        seed=int(seed),
        directory=workdir,
        project_name="plain",
        overwrite=True,
    )
    stop_early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=5, restore_best_weights=True
    )
    tuner.search(
        data["x"],
        data["y"],
        epochs=MAX_EPOCHS,
        validation_data=(data["x_val"], data["y_val"]),
        callbacks=[stop_early],
        verbose=0,
    )
    searched_at = time.monotonic()
    trials = [tuner.oracle.trials[i] for i in tuner.oracle.start_order]
    print(
        json.dumps(
            {
                "imported_at": IMPORTED_AT,
                "searched_at": searched_at,
                "best_score": tuner.oracle.get_best_trials(1)[0].score,
                "trials": [
                    {
                        "hyperparameters": {
                            k: v
                            for k, v in t.hyperparameters.values.items()
                            if "/" not in k and t.hyperparameters.is_active(k)
                        },
                        "epochs_run": tuner.epochs.get(t.trial_id, 0),
                        "duration_s": tuner.trial_s.get(t.trial_id),
                    }
                    for t in trials
                ],
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
