"""The baseline: a plain KerasTuner script written the way the KerasTuner guide shows.

Numpy arrays in, `validation_data`, the batch size tuned by overriding
`HyperModel.fit`, the search space declared up front, RandomSearch. The same model
family and hyperparameters as the service's default search space for this data set
(12 inputs -> units 8..64, powers of two), 10 trials x 10 epochs, no early stopping.

    python benchmarks/plain_script.py train.csv validation.csv test.csv label workdir

prints one JSON line: when the imports and the search ended (time.monotonic(),
comparable with the parent's clock), the best trial's val_accuracy, and the best
model's accuracy on the held-out test set (computed after the clock stopped).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext

import keras
import keras_tuner
import pandas as pd

IMPORTED_AT = time.monotonic()
TRIALS, EPOCHS, SEED = 10, 10, 42


def search_space() -> keras_tuner.HyperParameters:
    """The search space, declared up front as KerasTuner's guide shows ("Tailor the
    search space": `hyperparameters=hp, tune_new_entries=False`).

    The same names, ranges, defaults and order of declaration as the service's default
    space for 12 inputs (tuner_jobs.search.hyperparameters): seeded alike, the two sides'
    RandomSearch oracles then draw the same ten configurations, and the held-out
    comparison measures how each side trains them, not which ten it happened to pick.
    """
    hp = keras_tuner.HyperParameters()
    hp.Int("num_layers", 1, 3, step=1, sampling="linear")
    for layer in range(3):
        needs = [n for n in (1, 2, 3) if n > layer]
        with hp.conditional_scope("num_layers", needs) if layer else nullcontext():
            hp.Int(f"units_{layer}", 8, 64, step=2, sampling="log", default=32)
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Float("dropout", 0.0, 0.5, step=0.1, sampling="linear", default=0.0)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Choice("batch_size", [32, 64, 128], default=32)
    hp.Fixed("l2", 0.0)  # the service's space has these two; the script's model
    hp.Fixed("batch_norm", False)  # is what they mean when fixed at 0 and off
    return hp


class DenseModel(keras_tuner.HyperModel):
    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.inputs = inputs

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.Input(shape=(self.inputs,))])
        activation = hp.get("activation")
        dropout = hp.get("dropout")
        for i in range(hp.get("num_layers")):
            model.add(
                keras.layers.Dense(
                    hp.get(f"units_{i}"),
                    activation=activation,
                    kernel_initializer=hp.get("kernel_initializer"),
                )
            )
            if dropout > 0:
                model.add(keras.layers.Dropout(dropout))
        model.add(keras.layers.Dense(1, activation="sigmoid"))
        optimizer = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[
            hp.get("optimizer")
        ]
        model.compile(
            optimizer=optimizer(learning_rate=hp.get("learning_rate")),
            loss="binary_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):  # type: ignore[no-untyped-def]
        return model.fit(*args, batch_size=hp.get("batch_size"), **kwargs)


def arrays(frame: pd.DataFrame, target: str):  # type: ignore[no-untyped-def]
    y = (frame.pop(target) == "yes").to_numpy("float32")
    return frame.to_numpy("float32"), y


def main(train_csv: str, validation_csv: str, test_csv: str, target: str, workdir: str) -> None:
    x, y = arrays(pd.read_csv(train_csv), target)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = (x - mean) / std
    x_val, y_val = arrays(pd.read_csv(validation_csv), target)
    x_val = (x_val - mean) / std
    tuner = keras_tuner.RandomSearch(
        DenseModel(x.shape[1]),
        hyperparameters=search_space(),
        tune_new_entries=False,
        objective="val_accuracy",
        max_trials=TRIALS,
        seed=SEED,
        directory=workdir,
        project_name="plain",
        overwrite=True,
    )
    tuner.search(x, y, epochs=EPOCHS, validation_data=(x_val, y_val), verbose=0)
    searched_at = time.monotonic()

    best = tuner.oracle.get_best_trials(1)[0]
    x_test, y_test = arrays(pd.read_csv(test_csv), target)
    model = tuner.get_best_models(1)[0]
    predicted = model.predict((x_test - mean) / std, verbose=0)[:, 0] > 0.5
    result = {
        "imported_at": IMPORTED_AT,
        "searched_at": searched_at,
        "best_score": best.score,
        "test_accuracy": float((predicted == (y_test > 0.5)).mean()),
        "trials": len(tuner.oracle.trials),
        "configurations": [
            {k: v for k, v in t.hyperparameters.values.items() if t.hyperparameters.is_active(k)}
            for t in (tuner.oracle.trials[i] for i in tuner.oracle.start_order)
        ],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:6])
