"""The benchmark's tabular data: 2,000 rows, 12 numeric features, a binary target.

Generated, not downloaded, so the figures never depend on the network. The target is
a non-linear function of the features plus noise (deeper or wider models score
higher, so a search has something to find). A second draw from the same distribution
is the held-out test set on which both sides' best models are compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 2_000
FEATURES = 12
TARGET = "label"
TRAIN_SEED, TEST_SEED = 7, 8


def tabular_frame(rows: int = ROWS, seed: int = TRAIN_SEED) -> pd.DataFrame:
    weights = np.random.default_rng(0).normal(size=FEATURES)  # the concept: fixed
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    logit = x @ weights + 1.5 * np.sin(2 * x[:, 0]) * x[:, 1] - 0.8 * x[:, 2] ** 2 + 0.8
    y = logit + rng.normal(0, 1.0, rows) > 0
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)])
    frame[TARGET] = np.where(y, "yes", "no")
    return frame


def write_csv(path: Path, rows: int = ROWS, seed: int = TRAIN_SEED) -> Path:
    tabular_frame(rows, seed).to_csv(path, index=False)
    return path
