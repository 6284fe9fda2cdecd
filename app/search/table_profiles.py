"""Reading uploaded tables (CSV, Parquet, NPZ) and profiling them for the model builder.

Pure pandas/numpy: the API profiles at upload, and the worker child reads the
same file back through `load_training_frame` so both see identical columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.errors import DatasetError
from app.search.column_checks import (
    check_float32,
    check_input_type,
    check_learnable_classes,
    check_target_type,
    check_width,
    column_width,
)
from app.search.csv_header import refuse_wide_encoding
from app.search.table_readers import read_table

EXTENSIONS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
MISSING_TOKEN = "[missing]"
MAX_CATEGORIES = 256  # rarer categories fall into the out-of-vocabulary bucket
MAX_CLASSES = 1000
CLASSIFICATION_MAX_DISTINCT_INTS = 20


@dataclass
class Profile:
    rows: int
    rows_dropped: int
    task: str
    classes: list[Any] | None
    columns: list[dict[str, Any]] = field(default_factory=list)
    target_missing: int = 0

    @property
    def features(self) -> int:
        """Width after encoding: one per number, one-hot plus an OOV slot per category."""
        return sum(map(column_width, self.columns))


def detect_format(filename: str | None, head: bytes) -> str:
    """The format the name claims, checked against the content's magic bytes."""
    suffix = Path(filename or "").suffix.lower()
    claimed = EXTENSIONS.get(suffix)
    sniffed = (
        "parquet" if head.startswith(b"PAR1") else "npz" if head.startswith(b"PK\x03\x04") else None
    )
    if claimed is None:
        if suffix:
            raise DatasetError(f"unsupported file type {suffix!r}; upload .csv, .parquet or .npz")
        return sniffed or "csv"
    if claimed == "csv" and sniffed is None:
        refuse_wide_encoding(head)
    if claimed == "csv" and sniffed is None and b"\x00" in head:
        raise DatasetError("the file is named .csv but is binary, not text")
    if claimed != "csv" and sniffed != claimed or claimed == "csv" and sniffed is not None:
        raise DatasetError(
            f"the file is named {suffix} but its content is "
            f"{'not ' + claimed if sniffed is None else sniffed}"
        )
    return claimed


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _check_finite(series: pd.Series, column: str, *, field: str = "file") -> None:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise DatasetError(
            f"column {column!r} has {int(infinite.sum())} infinite value(s), "
            f"first at row {row + 1}",
            field=field,
        )
    check_float32(series, column, field=field)


def _check_unparseable(series: pd.Series, column: str) -> None:
    """A text column that is nearly all numbers holds typos, not categories."""
    present = series.dropna().astype(str)
    if present.empty:
        return
    parsed = pd.to_numeric(present, errors="coerce")
    bad = parsed.isna()
    if bad.any() and (~bad).mean() >= 0.9:
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"column {column!r} is numeric but has unparseable value(s), e.g. "
            f"{present.iloc[row]!r} at row {present.index[row] + 1}"
        )


# PostgreSQL stores no NUL character in text or JSON, and column names, categories and
# classes are stored: a NUL in one is refused at upload, on every backend alike.
NUL = "\x00"


def _check_no_nul(series: pd.Series, column: str) -> None:
    present = series.dropna().astype(str)
    has_nul = present.str.contains(NUL, regex=False).to_numpy()
    if has_nul.any():
        row = int(np.argmax(has_nul))
        raise DatasetError(
            f"column {column!r} has a value with a NUL character, first at row "
            f"{present.index[row] + 1}"
        )


def category_strings(series: pd.Series) -> pd.Series:
    """Categories as strings, missing values as their own category (the model sees the same)."""
    return series.astype("object").where(series.notna(), MISSING_TOKEN).astype(str)


def _vocabulary(series: pd.Series) -> list[str]:
    counts = category_strings(series).value_counts(sort=False)
    # Most frequent first, ties by name, so the vocabulary is deterministic.
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ordered[:MAX_CATEGORIES]]


def _infer_task(target: pd.Series) -> str:
    if not _is_numeric(target):
        return "classification"
    values = target.to_numpy(dtype="float64")
    integral = bool(np.all(np.mod(values, 1) == 0))
    if integral and target.nunique() <= CLASSIFICATION_MAX_DISTINCT_INTS:
        return "classification"
    return "regression"


def class_label(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _classes(y: pd.Series, target: str) -> list[Any]:
    labels = [class_label(v) for v in pd.unique(y)]
    # Stored as JSON: a label of any other type (bytes among strings, say) cannot be.
    odd = next((v for v in labels if not isinstance(v, str | int | float | bool)), None)
    if odd is not None:
        raise DatasetError(
            f"target {target!r} holds a value of type {type(odd).__name__}: a target must "
            "hold numbers, booleans or strings",
            field="target",
        )
    return sorted(labels, key=lambda v: (str(type(v)), v))


def profile_frame(
    frame: pd.DataFrame,
    target: str,
    task: str | None,
    *,
    allow_many_classes: bool = False,
    max_features: int | None = None,
) -> Profile:
    """The profile of a parsed table; `task` None infers it. `allow_many_classes`: keep a
    classification whose classes are mostly seen once or twice; `max_features`: the most
    input features (encoded width) allowed."""
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise DatasetError(
            "the file has no data rows" if frame.shape[1] else "the file has no columns"
        )
    frame.columns = [str(c) for c in frame.columns]
    inputs = input_names(list(frame.columns), target)
    y = profile_target(frame[target], target, task, allow_many_classes=allow_many_classes)
    return y.profile(profile_inputs(frame, inputs, y.kept, max_features=max_features))


def input_names(names: list[str], target: str) -> list[str]:
    """The input columns of a table whose columns are `names`, once the names are checked."""
    if len(set(names)) != len(names):
        raise DatasetError("column names must be unique")
    for name in names:
        if NUL in name:
            raise DatasetError(f"column name {name!r} has a NUL character")
    if target not in names:
        raise DatasetError(
            f"target column {target!r} is not in the file; columns: {names}", field="target"
        )
    inputs = [c for c in names if c != target]
    if not inputs:
        raise DatasetError("the file has no input columns besides the target")
    return inputs


@dataclass
class TargetProfile:
    """The target's part of a profile; `kept`: the rows with a target (None: every row)."""

    task: str
    classes: list[Any] | None
    rows: int
    missing: int
    kept: np.ndarray | None

    def profile(self, columns: list[dict[str, Any]]) -> Profile:
        return Profile(
            rows=self.rows,
            rows_dropped=self.missing,
            task=self.task,
            classes=self.classes,
            columns=columns,
            target_missing=self.missing,
        )


def profile_target(
    target_series: pd.Series, target: str, task: str | None, *, allow_many_classes: bool
) -> TargetProfile:
    check_target_type(target_series, target)
    has_target = target_series.notna().to_numpy()
    missing = len(target_series) - int(has_target.sum())
    # Rows without a target are left out; without any, no copy of the table is made.
    y = target_series[has_target] if missing else target_series
    if y.empty:
        raise DatasetError(f"target column {target!r} has no values", field="target")
    if _is_numeric(y):
        _check_finite(y, target, field="target")
    else:
        _check_no_nul(y, target)

    if task is None:
        task = _infer_task(y)
    if task == "regression" and not _is_numeric(y):
        raise DatasetError(f"regression needs a numeric target; {target!r} is not", field="task")
    classes: list[Any] | None = None
    if task == "classification":
        classes = _classes(y, target)
        if len(classes) < 2:
            raise DatasetError(f"target {target!r} has a single class: {classes}", field="target")
        check_learnable_classes(
            y, classes, target, numeric=_is_numeric(y), allowed=allow_many_classes
        )
        if len(classes) > MAX_CLASSES:
            raise DatasetError(
                f"target {target!r} has {len(classes)} classes (max {MAX_CLASSES}); "
                "for a continuous target use task=regression",
                field="target",
            )
    return TargetProfile(task, classes, len(y), missing, has_target if missing else None)


def profile_inputs(
    frame: pd.DataFrame,
    names: list[str],
    kept: np.ndarray | None,
    *,
    max_features: int | None = None,
) -> list[dict[str, Any]]:
    """The profiles of `frame`'s input columns `names`, over the rows in `kept`. The width
    is checked against `max_features` before the values are: a table thousands of
    categories wide is refused without checking each of its values."""
    columns: list[dict[str, Any]] = []
    for name in names:
        series = _rows(frame[name], kept)
        check_input_type(series, name)
        column: dict[str, Any] = {"name": name, "kind": "numeric"}
        if not _is_numeric(series):
            column["kind"] = "categorical"
            column["vocabulary"] = _vocabulary(series)
        column["missing"] = int(frame[name].isna().sum())
        columns.append(column)
    check_width(columns, max_features)
    for column in columns:
        name = column["name"]
        series = _rows(frame[name], kept)
        if column["kind"] == "numeric":
            _check_finite(series, name)
            if series.isna().all():
                raise DatasetError(f"column {name!r} has no values")
        else:
            _check_unparseable(series, name)
            _check_no_nul(series, name)
    # Key order as stored before the width came first: name, kind, missing, vocabulary.
    return [{k: c[k] for k in ("name", "kind", "missing", "vocabulary") if k in c} for c in columns]


def _rows(series: pd.Series, kept: np.ndarray | None) -> pd.Series:
    return series if kept is None else series[kept]


def load_training_frame(
    path: Path, fmt: str, target: str, *, max_unpacked_bytes: int
) -> tuple[pd.DataFrame, pd.Series]:
    """The rows a search trains on: inputs and target, rows without a target dropped."""
    frame = read_table(path, fmt, max_unpacked_bytes=max_unpacked_bytes)
    frame.columns = [str(c) for c in frame.columns]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    return frame.drop(columns=[target]), frame[target]
