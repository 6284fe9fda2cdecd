"""Rows for POST /predict: dicts by column or a DataFrame, as JSON (NaN as null)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any


def _jsonable(value: Any) -> Any:
    # numpy scalars (what a DataFrame hands out) are not JSON; NaN means "missing" to pandas
    # and must travel as null, since JSON has no NaN.
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    pandas = sys.modules.get("pandas")
    if pandas is not None and (value is pandas.NaT or value is pandas.NA):
        return None
    return value


def rows_payload(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A DataFrame's records, or the dicts given, with every value JSON-ready."""
    # pandas is only imported where the caller already has it: a DataFrame implies it.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(rows, pandas.DataFrame):
        rows = rows.to_dict("records")
    return [{str(k): _jsonable(v) for k, v in record.items()} for record in rows]
