"""Training data for a search: the split, the preprocessing model, the encoded arrays.

The rows are split once (tuner_jobs.search.split), into a validation split or into
cross-validation folds: the held-out test rows, when the job asks for them, are set aside
before anything else, so neither the preprocessing statistics
nor the search nor the choice of the best model ever sees them.

Preprocessing is a Keras model (Normalization for numbers, StringLookup one-hot
for categories) built once per search from training-split statistics, then applied
once: every trial trains on the same dense float32 matrix, and the same
preprocessor can be put in front of the best model so that it takes raw rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from app.search.table_profiles import category_strings, class_label, load_training_frame
from tuner_jobs.search.layers import impute_missing, numeric_statistics
from tuner_jobs.search.split import Split, split_dataset


@dataclass
class Head:
    """The output layer and loss for the task."""

    units: int
    activation: str | None
    loss: str
    metrics: tuple[str, ...]
    target_mean: float = 0.0
    target_std: float = 1.0


@dataclass
class TrainingData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    preprocessor: keras.Model
    head: Head
    # The held-out rows (empty without training.test_split), and what the scikit-learn
    # baselines need to fit on exactly the same rows: the raw columns, the encoded target.
    x_test: np.ndarray
    y_test: np.ndarray
    split: Split
    frame: pd.DataFrame
    y: np.ndarray

    @property
    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cross-validation: each fold's (training, validation) positions in x_train (every
        row but the test rows, then); [] for a job with one validation split."""
        train = self.split.train
        return [
            (np.searchsorted(train, fit), np.searchsorted(train, held))
            for fit, held in self.split.folds
        ]


def input_names(columns: list[dict[str, Any]]) -> dict[str, str]:
    """Column -> the saved model's input name (Keras names cannot hold '/'; kept unique)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        base = column["name"].replace("/", "_") or "column"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names[column["name"]] = name
    return names


def build_preprocessor(columns: list[dict[str, Any]], train: pd.DataFrame) -> keras.Model:
    """One input per raw column; numbers are imputed and normalized, categories one-hot.

    Statistics (median, mean, variance) come from the training split only.
    """
    names = input_names(columns)
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"]
    inputs: dict[str, keras.KerasTensor] = {}
    encoded = []
    if numeric:
        stats = numeric_statistics(train[numeric].to_numpy(dtype="float64"))
        for column in numeric:
            inputs[names[column]] = keras.Input(shape=(1,), dtype="float32", name=names[column])
        block = [inputs[names[c]] for c in numeric]
        x = block[0] if len(block) == 1 else keras.layers.Concatenate(name="numbers")(block)
        # Built-in ops, not a custom layer: the saved model loads with plain Keras.
        x = impute_missing(x, stats.medians)
        normalize = keras.layers.Normalization(
            mean=stats.mean, variance=stats.variance, name="normalize"
        )
        encoded.append(normalize(x))
    for column in (c for c in columns if c["kind"] == "categorical"):
        key = names[column["name"]]
        inputs[key] = keras.Input(shape=(1,), dtype="string", name=key)
        # Categories not seen in training fall into the one out-of-vocabulary slot.
        lookup = keras.layers.StringLookup(
            vocabulary=column["vocabulary"], num_oov_indices=1, output_mode="one_hot"
        )
        encoded.append(lookup(inputs[key]))
    output = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate()(encoded)
    return keras.Model(inputs=inputs, outputs=output, name="preprocessing")


def model_inputs(columns: list[dict[str, Any]], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw rows -> the inputs of the preprocessor (and of the saved best model)."""
    names = input_names(columns)
    inputs: dict[str, np.ndarray] = {}
    for column in columns:
        series = frame[column["name"]]
        if column["kind"] == "numeric":
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float32")
        else:
            values = category_strings(series).to_numpy(dtype=str)
        inputs[names[column["name"]]] = values.reshape(-1, 1)
    return inputs


def class_indices(y: pd.Series, classes: list[Any]) -> np.ndarray:
    """Each row's class as its index in the dataset's `classes`."""
    index = {label: i for i, label in enumerate(classes)}
    return np.array([index[class_label(v)] for v in y.tolist()], dtype="int64")


def _encode_target(
    y: pd.Series, task: str, classes: list[Any] | None, train_idx: np.ndarray
) -> tuple[np.ndarray, Head]:
    if task == "classification":
        assert classes is not None
        encoded = class_indices(y, classes)
        if len(classes) == 2:
            return encoded.astype("float32"), Head(
                1, "sigmoid", "binary_crossentropy", ("accuracy",)
            )
        return encoded.astype("int32"), Head(
            len(classes), "softmax", "sparse_categorical_crossentropy", ("accuracy",)
        )
    values = y.to_numpy(dtype="float64")
    mean, std = float(values[train_idx].mean()), float(values[train_idx].std()) or 1.0
    # The network predicts a standardized target; a Rescaling layer maps it back.
    return values.astype("float32"), Head(1, None, "mse", ("mae",), mean, std)


def prepare(
    *,
    path: Path,
    fmt: str,
    target: str,
    task: str,
    classes: list[Any] | None,
    columns: list[dict[str, Any]],
    validation_split: float,
    seed: int,
    max_unpacked_bytes: int,
    test_split: float = 0.0,
    folds: int | None = None,
) -> TrainingData:
    """`folds`: cross-validation, over every row but the test rows (x_train then holds
    them all, in table order, x_val none; TrainingData.folds says which row is where)."""
    features, y = load_training_frame(path, fmt, target, max_unpacked_bytes=max_unpacked_bytes)
    labels = class_indices(y, classes) if task == "classification" and classes else None
    split = split_dataset(
        len(features),
        validation_split=validation_split,
        test_split=test_split,
        seed=seed,
        labels=labels,
        folds=folds,
    )
    # With folds, the preprocessing statistics come from every row the folds share: those
    # the refit model trains on (tuner_jobs.search.cross_validation).
    train_idx, val_idx = split.train, split.validation
    preprocessor = build_preprocessor(columns, features.iloc[train_idx])
    x = keras.ops.convert_to_numpy(preprocessor(model_inputs(columns, features)))
    x = x.astype("float32")
    y_encoded, head = _encode_target(y, task, classes, train_idx)
    return TrainingData(
        x_train=x[train_idx],
        y_train=y_encoded[train_idx],
        x_val=x[val_idx],
        y_val=y_encoded[val_idx],
        preprocessor=preprocessor,
        head=head,
        x_test=x[split.test],
        y_test=y_encoded[split.test],
        split=split,
        frame=features,
        y=y_encoded,
    )
