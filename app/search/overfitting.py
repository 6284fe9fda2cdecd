"""Overfitting read from a trial's curves: where validation loss turns while training loss falls.

The source notes: training and validation loss fall together; when they start to
separate the model is overfitting. Pure Python: the recorder (worker) computes
it when a trial ends, the API only shows the stored result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.search.spec_sections import EarlyStoppingSpec

# How many epochs of divergence count as overfitting when the job has no EarlyStopping.
DEFAULT_PATIENCE = 5

# One recorded epoch: (epoch, loss, val_loss); a loss is None when Keras logged none
# (or a non-finite one).
EpochLosses = tuple[int, float | None, float | None]


@dataclass(frozen=True)
class Overfitting:
    overfit_epoch: int | None
    generalization_gap: float | None


def overfitting_patience(early_stopping: EarlyStoppingSpec | None) -> int:
    """The patience used to call a trial overfit.

    The job's EarlyStopping patience when early stopping is on (the user already
    said how many bad epochs they tolerate), else DEFAULT_PATIENCE (5). At least 1:
    a patience of 0 would call any single noisy epoch a divergence.
    """
    if early_stopping is None:
        return DEFAULT_PATIENCE
    return max(1, early_stopping.patience)


def overfit_epoch(curve: Sequence[EpochLosses], patience: int) -> int | None:
    """The first epoch after which val_loss rises, epoch on epoch, for at least `patience`
    epochs while training loss falls in each of those epochs; None when that never happens.

    The epoch returned is the last one before the divergence (the turning point),
    numbered as recorded. An epoch without both losses breaks a run.
    """
    patience = max(1, patience)
    rows = sorted(curve, key=lambda row: row[0])
    run = 0  # consecutive diverging epochs ending at the current row
    for i in range(1, len(rows)):
        _, loss_before, val_before = rows[i - 1]
        _, loss, val = rows[i]
        known = None not in (loss_before, val_before, loss, val)
        diverging = known and val > val_before and loss < loss_before  # type: ignore[operator]
        run = run + 1 if diverging else 0
        if run >= patience:
            return rows[i - run][0]
    return None


def generalization_gap(curve: Sequence[EpochLosses], best_epoch: int | None) -> float | None:
    """val_loss - loss at the trial's best epoch (an epoch number of the curve), or None."""
    at_best = [row for row in curve if row[0] == best_epoch]
    if best_epoch is None or not at_best:
        return None
    _, loss, val_loss = at_best[0]
    if loss is None or val_loss is None:
        return None
    return val_loss - loss


def assess(curve: Sequence[EpochLosses], *, patience: int, best_epoch: int | None) -> Overfitting:
    return Overfitting(
        overfit_epoch=overfit_epoch(curve, patience),
        generalization_gap=generalization_gap(curve, best_epoch),
    )
