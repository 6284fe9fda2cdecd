"""Which rows of a data set a search trains on and which it validates on (no TensorFlow:
benchmarks/ uses it too, to hand a plain KerasTuner script the very same rows)."""

from __future__ import annotations

import numpy as np


def split_rows(rows: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training row indices, validation row indices): a seeded random `validation_split`."""
    order = np.random.default_rng(seed).permutation(rows)
    n_val = min(rows - 1, max(1, round(rows * validation_split)))
    if n_val < 1:
        raise ValueError(f"{rows} row(s) is too few to hold out a validation set")
    return order[n_val:], order[:n_val]
