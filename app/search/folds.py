"""How many cross-validation folds a job gets (`training.cross_validation`), decided at
submission from the dataset's size; and the one read of a dataset that decision needs.

"auto" is 5 folds below AUTO_BELOW training rows (the rows left after the test split)
and one validation split above: on a small table one split's score is mostly luck, on a
large one k folds cost k times the training for little. No TensorFlow, no scikit-learn:
the API runs this.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from app.errors import ProblemError

AUTO_BELOW = 1_000
AUTO_FOLDS = 5
_FIELD = ["training", "cross_validation", "folds"]


def training_rows(rows: int, test_split: float) -> int:
    """Rows left once the test rows are set aside (as tuner_jobs.search.split takes them)."""
    return rows - (max(1, round(rows * test_split)) if test_split > 0 else 0)


def _too_many(detail: str) -> ProblemError:
    return ProblemError(
        422,
        f"{'.'.join(_FIELD)}: {detail}",
        title="Invalid input",
        errors=[{"loc": ["body", *_FIELD], "msg": detail, "type": "value"}],
    )


def _class_rows(smallest: int, test_split: float) -> int:
    """The rarest class's rows outside the test rows (the test split is stratified)."""
    return smallest - (round(smallest * test_split) if test_split > 0 else 0)


def resolve_folds(
    requested: int | Literal["auto"] | None,
    *,
    test_split: float,
    classification: bool,
    rows: int | None,
    smallest_class: Callable[[], int] | None,
) -> int | None:
    """The folds a job runs (None: one validation split). An explicit number is checked
    against the training rows and, for classification, the rarest class's rows (every
    fold must be able to hold one of each); "auto" never refuses: it takes fewer folds
    when a class is too rare for 5, and one split when it is too rare for 2."""
    if requested is None or rows is None:
        return None
    train = training_rows(rows, test_split)
    if requested == "auto":
        if train >= AUTO_BELOW:
            return None
        folds = min(AUTO_FOLDS, train)
        if classification and smallest_class is not None:
            folds = min(folds, _class_rows(smallest_class(), test_split))
        return folds if folds >= 2 else None
    if requested > train:
        raise _too_many(
            f"{requested} folds need at least {requested} training rows; the dataset has {train}"
        )
    if classification and smallest_class is not None:
        rarest = _class_rows(smallest_class(), test_split)
        if requested > rarest:
            raise _too_many(
                f"{requested} folds need at least {requested} rows of every class (stratified "
                f"folds); the rarest class has {rarest} training row(s)"
            )
    return requested


def smallest_class_rows(path: Path, fmt: str, target: str, *, max_unpacked_bytes: int) -> int:
    """Rows of the dataset's rarest class (as the search reads the table)."""
    # Imported here: every worker supervisor imports this module (through app.search.spec)
    # and never reads a table; pandas is a quarter of its start-up.
    import pandas as pd

    from app.search.table_profiles import class_label, load_training_frame

    _, y = load_training_frame(path, fmt, target, max_unpacked_bytes=max_unpacked_bytes)
    counts = pd.Series([class_label(value) for value in y.tolist()]).value_counts()
    return int(counts.min()) if len(counts) else 0
