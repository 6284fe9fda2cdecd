"""The tables of `make bench-search`: three that scikit-learn ships, one generated.

All four are classification tables written as CSV with a `target` column, as a user
would upload them. Nothing is downloaded: scikit-learn ships the first three in its
package, and the fourth is drawn from a fixed seed.

- breast_cancer: 569 rows, 30 numeric inputs, 2 classes (the table of the issue);
- wine: 178 rows, 13 numeric inputs, 3 classes;
- digits: 1,797 rows, 64 pixel intensities (0-16), 10 classes;
- generated: 3,000 rows, `make_classification` (2 classes, 3% of labels flipped) with
  two of its informative inputs binned into text categories (one with missing values)
  and 2% of one numeric column missing, so the one-hot and imputation paths count too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

TARGET = "target"
GENERATED_ROWS = 3_000


def _shipped(loader: Callable[..., object], names: bool) -> Callable[[], pd.DataFrame]:
    def frame() -> pd.DataFrame:
        bunch = loader(as_frame=True)
        table = bunch.frame.copy()  # type: ignore[attr-defined]
        if names:  # class names, as a user's table would hold them, not codes
            table[TARGET] = np.asarray(bunch.target_names)[table[TARGET]]  # type: ignore[attr-defined]
        return table

    return frame


def generated() -> pd.DataFrame:
    x, y = datasets.make_classification(
        n_samples=GENERATED_ROWS,
        n_features=12,
        n_informative=6,
        n_redundant=2,
        n_classes=2,
        flip_y=0.03,
        class_sep=0.8,
        shuffle=False,  # informative inputs first: columns 0 and 1 carry signal
        random_state=0,
    )
    rng = np.random.default_rng(0)
    table = pd.DataFrame(x[:, 2:], columns=[f"x{i}" for i in range(2, 12)])
    for column, letters in ((0, "abcdef"), (1, "pqrst")):
        bins = pd.qcut(x[:, column], len(letters), labels=list(letters)).astype(object)
        table.insert(column, f"cat{column}", bins)
    table.loc[rng.random(len(table)) < 0.03, "cat1"] = None
    table.loc[rng.random(len(table)) < 0.02, "x5"] = np.nan
    table[TARGET] = np.where(y == 1, "yes", "no")
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": _shipped(datasets.load_breast_cancer, names=True),
    "wine": _shipped(datasets.load_wine, names=True),
    "digits": _shipped(datasets.load_digits, names=False),
    "generated": generated,
}


def write_table(name: str, directory: Path) -> Path:
    path = directory / f"{name}.csv"
    TABLES[name]().to_csv(path, index=False)
    return path


def rows_digest(rows: np.ndarray) -> str:
    """A short digest of a set of row indices: two sides held out the same rows if equal."""
    return hashlib.sha256(np.sort(rows).astype("int64").tobytes()).hexdigest()[:16]


def table_rows(name: str) -> int:
    return len(TABLES[name]())
