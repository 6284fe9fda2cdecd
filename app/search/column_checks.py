"""What a profiled column may hold, and what a profile may add up to: each check a 422 naming
the column (or `task`) and what to do about it.

- Values: a number training cannot hold in float32 (the dtype of every tensor a search
  builds) overflows to inf there, and the search fails trial after trial.
- Types: a date or time is neither a number nor a label. One-hot encoded, every distinct
  timestamp is its own category, seen once; as a target it cannot even be stored.
- Classes: a classification needs each class seen a few times. A numeric column asked for
  as `classification` (a form's pre-selected choice) gives one class per distinct value.
- Width: the encoded width is what a search holds per row; a few wide categorical columns
  multiply it by hundreds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from app.errors import DatasetError
from app.search.spec_limits import FLOAT32_MAX

# Past this many classes, a classification must have seen most of them more than twice.
FEW_CLASSES = 20
RARE_CLASS_ROWS = 2
WIDEST_SHOWN = 5
DATE_HINT = (
    "convert it to numbers before uploading (seconds since 1970, or its parts such as year, "
    "month, day of week and hour as columns of their own)"
)


def check_float32(series: pd.Series, column: str, *, field: str = "file") -> None:
    """Refuse a value beyond float32's range (infinite values are refused before this)."""
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        beyond = np.abs(values) > FLOAT32_MAX
    if beyond.any():
        at = int(np.argmax(beyond))
        raise DatasetError(
            f"column {column!r} has {int(beyond.sum())} value(s) beyond float32's range "
            f"(±{FLOAT32_MAX:.4g}), which training cannot hold: e.g. {float(values[at])!r} at data "
            f"row {series.index[at] + 1}; rescale the column (e.g. to other units)",
            field=field,
        )


# pandas' name for what an object column holds -> what it is, for a refusal.
INFERRED_PROBLEMS = {
    "bytes": "raw bytes",
    "date": "dates",
    "datetime": "timestamps",
    "datetime64": "timestamps",
    "time": "times of day",
    "period": "periods",
    "timedelta": "durations",
    "complex": "complex numbers",
    "interval": "intervals",
}
DATES = frozenset({"dates", "timestamps", "times of day", "periods"})


def type_problem(series: pd.Series) -> str | None:
    """What makes `series` neither numbers, booleans nor text, in words; None when it is."""
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return f"timestamps ({dtype})"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return f"durations ({dtype})"
    if pd.api.types.is_complex_dtype(dtype):
        return f"complex numbers ({dtype})"
    if isinstance(dtype, np.dtype) and dtype.kind in "SV":
        return f"raw bytes ({dtype})"
    if dtype is not np.dtype(object):
        return None
    # In C, one pass: a Python loop over a 2M-row column would cost more than its profile.
    return INFERRED_PROBLEMS.get(pd.api.types.infer_dtype(series, skipna=True))


def _hint(problem: str) -> str:
    what = problem.split(" (")[0]
    if what == "raw bytes":
        return "save the values as strings"
    return DATE_HINT if what in DATES else "convert it"


def check_target_type(series: pd.Series, target: str) -> None:
    problem = type_problem(series)
    if problem is not None:
        raise DatasetError(
            f"target {target!r} holds {problem}: a target must hold numbers, booleans or "
            f"strings; {_hint(problem)}",
            field="target",
        )


def check_input_type(series: pd.Series, column: str) -> None:
    """Dates and times (and complex numbers) are refused; raw bytes stay categories."""
    problem = type_problem(series)
    if problem is not None and not problem.startswith("raw bytes"):
        raise DatasetError(f"column {column!r} holds {problem}; {_hint(problem)}")


def check_learnable_classes(
    y: pd.Series, classes: list[Any], target: str, *, numeric: bool, allowed: bool
) -> None:
    """422 on `task` when most of many classes are seen at most twice, or the target is a
    fractional number: a classifier cannot learn them from these rows."""
    if allowed or len(classes) <= FEW_CLASSES:
        return
    counts = y.value_counts(sort=False).to_numpy()
    rare = int((counts <= RARE_CLASS_ROWS).sum())
    fractional = numeric and not bool(np.all(np.mod(y.to_numpy(dtype="float64"), 1) == 0))
    if rare * 2 <= len(counts) and not fractional:
        return
    looks = (
        "the column looks numeric: for a quantity use task=regression"
        if numeric
        else "it looks like an identifier or free text, not labels"
    )
    raise DatasetError(
        f"task: classification of target {target!r} would have {len(classes)} classes, "
        f"{rare} of them seen at most {RARE_CLASS_ROWS} times in {len(y)} rows: more than a "
        f"classifier can learn from these rows; {looks}. Send allow_many_classes=true to "
        "classify anyway",
        field="task",
    )


def column_width(column: dict[str, Any]) -> int:
    """Encoded width: one per number, one-hot plus an out-of-vocabulary slot per category."""
    return 1 if column["kind"] == "numeric" else len(column["vocabulary"]) + 1


def check_width(columns: list[dict[str, Any]], max_features: int | None) -> None:
    width = sum(map(column_width, columns))
    if max_features is None or width <= max_features:
        return
    widest = sorted(columns, key=lambda c: (-column_width(c), c["name"]))[:WIDEST_SHOWN]
    shown = ", ".join(f"{c['name']!r} ({column_width(c)})" for c in widest)
    raise DatasetError(
        f"the table encodes to {width:,} input features, more than the limit of "
        f"{max_features:,} (TUNER_MAX_FEATURES): a number is one feature, a categorical "
        "column one per category (its most frequent ones) plus one for unseen categories. "
        f"The widest columns: {shown}; drop them, or group their rare values, and upload again"
    )
