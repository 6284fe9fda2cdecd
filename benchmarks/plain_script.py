"""The baseline: a plain KerasTuner script written the way the KerasTuner guide shows.

Numpy arrays in, `validation_split`, the batch size tuned by overriding
`HyperModel.fit`, RandomSearch. The same model family and hyperparameters as the
service's default search space for this data set (12 inputs -> units 8..64, powers
of two), 10 trials x 10 epochs, no early stopping.

    python benchmarks/plain_script.py train.csv test.csv label workdir

prints one JSON line: when the imports and the search ended (time.monotonic(),
comparable with the parent's clock), the best trial's val_accuracy, and the best
model's accuracy on the held-out test set (computed after the clock stopped).
"""

from __future__ import annotations

import json
import sys
import time

import keras
import keras_tuner
import pandas as pd

IMPORTED_AT = time.monotonic()
TRIALS, EPOCHS, SEED = 10, 10, 42


class DenseModel(keras_tuner.HyperModel):
    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.inputs = inputs

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.Input(shape=(self.inputs,))])
        activation = hp.Choice("activation", ["relu", "tanh"])
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
        initializer = hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"])
        for i in range(hp.Int("num_layers", 1, 3)):
            units = hp.Int(f"units_{i}", min_value=8, max_value=64, step=2, sampling="log")
            model.add(
                keras.layers.Dense(units, activation=activation, kernel_initializer=initializer)
            )
            if dropout > 0:
                model.add(keras.layers.Dropout(dropout))
        model.add(keras.layers.Dense(1, activation="sigmoid"))
        optimizer = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[
            hp.Choice("optimizer", ["adam", "rmsprop"])
        ]
        learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        model.compile(
            optimizer=optimizer(learning_rate=learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):  # type: ignore[no-untyped-def]
        return model.fit(*args, batch_size=hp.Choice("batch_size", [32, 64, 128]), **kwargs)


def arrays(frame: pd.DataFrame, target: str):  # type: ignore[no-untyped-def]
    y = (frame.pop(target) == "yes").to_numpy("float32")
    return frame.to_numpy("float32"), y


def main(train_csv: str, test_csv: str, target: str, workdir: str) -> None:
    x, y = arrays(pd.read_csv(train_csv), target)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = (x - mean) / std
    tuner = keras_tuner.RandomSearch(
        DenseModel(x.shape[1]),
        objective="val_accuracy",
        max_trials=TRIALS,
        seed=SEED,
        directory=workdir,
        project_name="plain",
        overwrite=True,
    )
    tuner.search(x, y, epochs=EPOCHS, validation_split=0.2, verbose=0)
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
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:5])
