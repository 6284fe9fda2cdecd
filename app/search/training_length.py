"""How long a trial trains and how long a job runs, derived from the table, not fixed.

A fixed epoch count means very different training on different tables: 30 epochs of a
120-row fold at batch 32 are 120 gradient steps (a network still learning), 30 epochs of
100,000 rows are 75,000. Lengths here are counted in gradient steps and turned into
epochs with the steps an epoch takes, so that every trial can train to its plateau and
early stopping (best weights restored) is what ends it, as the source notes ask: stop
where the training and validation curves part. Decided once, at submission, and shown
in the resolved spec with what they came from (`Derivation`). A value the user gave is
never replaced. No TensorFlow: the API runs this.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.search.folds import training_rows
from app.search.space_values import parameter_values

# Gradient steps a trial may take at most: enough for a small network with Adam at its
# default learning rate to reach its plateau on a small table.
TRIAL_STEPS = 2000
# Epochs within which training stops: the bounds of the derived epoch cap. The floor keeps
# a large table's trials at a few passes over its rows, the ceiling a tiny table's cheap.
MIN_EPOCHS, MAX_EPOCHS = 20, 500
# Early stopping's patience: steps without improvement before a trial stops.
PATIENCE_STEPS = 120
MIN_PATIENCE = 5
# The shortest stretch that ranks configurations rather than scoring them at chance:
# Hyperband's smallest rung and median pruning's first judged epoch.
RUNG_STEPS = 60
# A batch holds at most this share of a fit's rows, so that an epoch is several steps.
MIN_STEPS_PER_EPOCH = 4
DEFAULT_BATCHES = (32, 64, 128)

# The default time budget (max_runtime_s omitted with no max_trials): BUDGET_BASE_S for a
# table of BUDGET_BASE_ROWS training rows, growing as rows ** BUDGET_GROWTH (a table 16
# times larger gets 5 times longer), within [MIN_BUDGET_S, MAX_BUDGET_S]. Issue 25 asks
# for a 150-row table's default job within a minute on two cores, issue 24 for a few
# thousand rows within about 5 minutes (docs/benchmarks.md, make bench-default-job).
BUDGET_BASE_S, BUDGET_BASE_ROWS, BUDGET_GROWTH = 60.0, 150, 0.58
MIN_BUDGET_S, MAX_BUDGET_S = 60.0, 1800.0
# The budget is the whole job's: this share of it (within the bounds) is kept for the
# end phase (refit, baselines, test score, ensemble, exports) after the search stops.
END_PHASE_SHARE, MIN_END_PHASE_S, MAX_END_PHASE_S = 0.2, 10.0, 180.0


# A trial's time, roughly: each epoch's fixed cost (one call into the traced functions,
# the validation pass, the callbacks) and each gradient step's, on a small network and
# one core (docs/benchmarks.md, make bench-floor).
EPOCH_S, STEP_S = 0.01, 0.0005


class Derivation(BaseModel):
    """What the resolved spec's derived values came from (shown with the job's spec)."""

    # None where the table's size was not known (no lengths were derived then).
    fit_rows: int | None = Field(
        default=None, description="rows one fit trains on (a fold's, or one split's)"
    )
    batch_size: int | None = Field(
        default=None, description="the search space's largest batch size"
    )
    steps_per_epoch: int | None = Field(
        default=None, description="gradient steps an epoch takes at that batch"
    )
    derived: list[str] = Field(
        default_factory=list,
        description="the spec's fields decided here (the others were the user's)",
    )
    budget_source: Literal["auto", "user"] | None = Field(
        default=None, description='where max_runtime_s came from ("auto": derived here)'
    )
    train_rows: int | None = Field(
        default=None, description="rows the auto budget was derived from (all but the test rows)"
    )
    workers: int | None = Field(default=None, description="workers the auto budget assumed")
    trial_estimate_s: float | None = Field(
        default=None,
        description="about the longest one trial takes (every fold to the epoch cap; "
        "early stopping usually ends it well before)",
    )
    note: str | None = Field(
        default=None, description="what the job wants you to know of its budget, if anything"
    )
    end_phase_s: float = Field(
        default=0.0,
        description="seconds of max_runtime_s kept for the end phase: the search stops "
        "this much before the budget ends",
    )


def fit_rows(rows: int, *, test_split: float, folds: int | None, validation_split: float) -> int:
    """Rows one fit trains on: a fold's training rows, or one split's."""
    train = training_rows(rows, test_split)
    held = train // folds if folds else round(train * validation_split)
    return max(1, train - held)


def default_batches(rows_per_fit: int) -> list[int]:
    """The default batch sizes for a table: those that leave an epoch several steps,
    or the largest power of two that does on a tiny table."""
    fitting = [b for b in DEFAULT_BATCHES if b * MIN_STEPS_PER_EPOCH <= rows_per_fit]
    if fitting:
        return fitting
    return [max(8, 1 << max(0, (rows_per_fit // MIN_STEPS_PER_EPOCH).bit_length() - 1))]


def largest_batch(space: dict[str, dict[str, Any]]) -> int:
    values = parameter_values(space["batch_size"])
    return int(max(values) if values else space["batch_size"]["max"])


def steps_per_epoch(rows_per_fit: int, batch_size: int) -> int:
    return max(1, math.ceil(rows_per_fit / batch_size))


def epochs_for(steps: int) -> int:
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TRIAL_STEPS / steps)))


def patience_for(steps: int) -> int:
    return max(MIN_PATIENCE, math.ceil(PATIENCE_STEPS / steps))


def rung_for(steps: int, epochs: int) -> int:
    """Hyperband's smallest rung and pruning's first judged epoch, within the trial's cap."""
    return min(epochs, max(1, math.ceil(RUNG_STEPS / steps)))


def auto_budget(train_rows: int, workers: int) -> float:
    """The default max_runtime_s: grows with the table, a little longer with fewer workers
    (each trial runs on one), within [MIN_BUDGET_S, MAX_BUDGET_S]."""
    grown = BUDGET_BASE_S * (max(train_rows, 1) / BUDGET_BASE_ROWS) ** BUDGET_GROWTH
    per_workers = min(1.4, max(0.7, math.sqrt(2 / max(workers, 1))))
    return float(round(min(MAX_BUDGET_S, max(MIN_BUDGET_S, grown * per_workers))))


def end_phase_seconds(budget: float) -> float:
    """Seconds of a budget kept for the end phase; never more than half of it."""
    kept = min(MAX_END_PHASE_S, max(MIN_END_PHASE_S, END_PHASE_SHARE * budget))
    return round(min(kept, budget / 2), 1)


def trial_estimate_s(steps: int, epochs: int, fits: int) -> float:
    """About the longest one trial takes: `fits` fits (folds x executions) of `epochs`."""
    return round(fits * epochs * (EPOCH_S + steps * STEP_S), 1)
