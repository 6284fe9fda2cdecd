"""Which rows of a data set a search trains on, which it validates on, and which it never
sees (the held-out test rows). No TensorFlow: benchmarks/ and the tests use it too, to
hand a plain script, or a check, the very same rows.

Classification splits are stratified by class (scikit-learn's own splitter), so a small
or unbalanced table does not leave a class out of the validation rows by chance.
The same seed gives the same split, whatever else the job asks for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

# Separate random streams: the test rows do not move when validation_split changes.
_TEST_STREAM = 1


@dataclass(frozen=True)
class Split:
    """Row indices (into the table as loaded) of each part; `test` may be empty."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    # Cross-validation: (training, validation) row indices of each fold, over `train`
    # (then every row that is not a test row; `validation` is empty). Empty otherwise.
    folds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def _test_seed(seed: int) -> int:
    return int(np.random.default_rng([seed, _TEST_STREAM]).integers(2**31))


def _take(
    rows: np.ndarray, count: int, seed: int, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, `count` rows taken out), stratified by `labels` where they allow it."""
    if labels is not None:
        try:
            kept, taken = train_test_split(
                rows, test_size=count, random_state=seed, stratify=labels[rows]
            )
            return np.asarray(kept), np.asarray(taken)
        except ValueError:
            # A class with a single row, or fewer rows to take than classes: scikit-learn
            # cannot stratify, and a plain random split is the best there is.
            pass
    order = rows[np.random.default_rng(seed).permutation(len(rows))]
    return order[count:], order[:count]


def split_rows(
    rows: int, validation_split: float, seed: int, *, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(training row indices, validation row indices): a seeded `validation_split` of the
    rows, stratified by `labels` (class per row) when given."""
    if rows < 2:
        raise ValueError(f"{rows} row(s) is too few to hold out a validation set")
    n_val = min(rows - 1, max(1, round(rows * validation_split)))
    return _take(np.arange(rows), n_val, seed, labels)


def split_dataset(
    rows: int,
    *,
    validation_split: float,
    test_split: float,
    seed: int,
    labels: np.ndarray | None = None,
    folds: int | None = None,
) -> Split:
    """Set `test_split` of the rows aside first (never seen by the search), then split the
    rest into training and validation rows as `split_rows` does, or, given `folds`, into
    that many cross-validation folds (`fold_indices`)."""
    everything = np.arange(rows)
    if folds is not None:
        rest, test = everything, np.array([], dtype=everything.dtype)
        if test_split > 0:
            rest, test = _take(
                everything, max(1, round(rows * test_split)), _test_seed(seed), labels
            )
            rest = np.sort(rest)
        empty = np.array([], dtype=everything.dtype)
        return Split(rest, empty, test, fold_indices(rest, folds, seed, labels=labels))
    if test_split <= 0:
        train, validation = split_rows(rows, validation_split, seed, labels=labels)
        return Split(train, validation, np.array([], dtype=everything.dtype))
    n_test = max(1, round(rows * test_split))
    if rows - n_test < 2:
        raise ValueError(
            f"{rows} row(s) is too few to hold out {n_test} test row(s) and a validation set"
        )
    rest, test = _take(everything, n_test, _test_seed(seed), labels)
    n_val = min(len(rest) - 1, max(1, round(len(rest) * validation_split)))
    train, validation = _take(rest, n_val, seed, labels)
    return Split(train, validation, test)


def fold_indices(
    rows: np.ndarray, folds: int, seed: int, *, labels: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`folds` (training, validation) pairs of row indices over `rows` (the table's rows
    that are not test rows): each row validates in exactly one fold. Stratified by
    `labels` (the class of every row of the table) where each class has a row per fold;
    otherwise plain seeded folds (scikit-learn's KFold)."""
    if folds < 2 or folds > len(rows):
        raise ValueError(f"{folds} folds need at least {folds} rows; there are {len(rows)}")
    if labels is not None and np.bincount(labels[rows]).max() >= folds:
        with warnings.catch_warnings():
            # A class with fewer rows than folds (the API refuses such folds, but the
            # test split may take a row more of a class than expected) is in fewer folds.
            warnings.simplefilter("ignore", UserWarning)
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            parts = list(splitter.split(rows, labels[rows]))
        return [(rows[train], rows[validation]) for train, validation in parts]
    parts = KFold(n_splits=folds, shuffle=True, random_state=seed).split(rows)
    return [(rows[train], rows[validation]) for train, validation in parts]
