"""Predict requests, API side: check raw rows against the dataset's columns, name what the
model cannot know (categories outside the training vocabulary), shape the answer.

No TensorFlow: the numbers come from the best model, run by app.api.predictor in a
child process (the API never imports TensorFlow).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import ProblemError
from app.search.table_profiles import MISSING_TOKEN

if TYPE_CHECKING:
    from app.store.models import Dataset

MAX_ROWS = 10_000
MAX_LISTED_ERRORS = 20
# The model computes in float32: a larger finite JSON number (1e300) becomes inf inside it,
# and its outputs NaN, which JSON would carry as null probabilities.
FLOAT32_MAX = 3.4028234663852886e38


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        description="Raw rows keyed by input column. null is a missing value (numbers take "
        "the training median; a missing category is its own category). A category not seen "
        "in training falls into the out-of-vocabulary bucket, and the answer's `warnings` "
        "name it.",
    )


class Prediction(BaseModel):
    label: Any | None = Field(default=None, description="classification: the predicted class")
    probabilities: dict[str, float] | None = Field(
        default=None, description="classification: probability of each class"
    )
    value: float | None = Field(default=None, description="regression: the predicted value")


class PredictionWarning(BaseModel):
    column: str = Field(description="the input column")
    values: list[Any] = Field(
        description=f"the values it had that training never saw (the first {MAX_LISTED_ERRORS})"
    )
    rows: list[int] = Field(description=f"rows with one (the first {MAX_LISTED_ERRORS})")
    count: int = Field(description="how many rows have one")
    message: str


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    warnings: list[PredictionWarning] = Field(
        default_factory=list,
        description="what the model was given that it cannot know: a category never seen in "
        "training is the one out-of-vocabulary bucket (as is any category too rare to get "
        "its own), whatever its value",
    )


def _short(value: float) -> str:
    """A number for a message: a 600-digit integer is named by its size, not spelled out."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def _problem(row: int, column: str, msg: str) -> dict[str, Any]:
    return {"loc": ["body", "rows", row, column], "msg": msg, "type": "value"}


def validate_rows(dataset: Dataset, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows restricted to the input columns; 422 naming each bad (row, column)."""
    known = {c["name"]: c for c in dataset.columns}
    errors: list[dict[str, Any]] = []
    clean: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        for name in row:
            if name not in known and name != dataset.target:
                errors.append(_problem(index, name, f"unknown column; inputs: {list(known)}"))
        for name, column in known.items():
            if name not in row:
                errors.append(
                    _problem(index, name, "missing column (send null for a missing value)")
                )
                continue
            value = row[name]
            if value is None:
                continue
            if column["kind"] == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    errors.append(_problem(index, name, f"expected a number, got {value!r}"))
                # An int compares with a float exactly, however large; math.isfinite would
                # convert it first and raise OverflowError past float64 (2**2000).
                elif isinstance(value, float) and not math.isfinite(value):
                    errors.append(_problem(index, name, "expected a finite number"))
                elif abs(value) > FLOAT32_MAX:
                    errors.append(
                        _problem(
                            index,
                            name,
                            f"{_short(value)} is out of range: the model takes numbers of at "
                            f"most {FLOAT32_MAX:.4g} in magnitude (float32)",
                        )
                    )
            elif not isinstance(value, str | int | float | bool):
                errors.append(_problem(index, name, f"expected a category, got {value!r}"))
        clean.append({name: row.get(name) for name in known})
    if errors:
        listed = "; ".join(
            f"row {e['loc'][2]}, column {e['loc'][3]!r}: {e['msg']}"
            for e in errors[:MAX_LISTED_ERRORS]
        )
        raise ProblemError(422, listed, title="Invalid rows", errors=errors)
    return clean


def _category(value: Any) -> str:
    """The string the model looks a category up by (tuner_jobs.search.data.model_inputs on a
    frame of Python objects: str() of the value, a null as MISSING_TOKEN)."""
    return MISSING_TOKEN if value is None else str(value)


def unseen_categories(dataset: Dataset, rows: list[dict[str, Any]]) -> list[PredictionWarning]:
    """One warning per categorical column with values outside its training vocabulary
    (`Zürich` where training saw `Zurich`): the model answers for them all the same, as
    for an unknown category, and the caller should know."""
    warnings = []
    for column in dataset.columns:
        if column["kind"] != "categorical":
            continue
        known = set(column["vocabulary"])
        name = column["name"]
        hits = [i for i, row in enumerate(rows) if _category(row[name]) not in known]
        if not hits:
            continue
        values: list[Any] = []
        for i in hits:
            if rows[i][name] not in values and len(values) < MAX_LISTED_ERRORS:
                values.append(rows[i][name])
        named = ", ".join("null" if v is None else repr(v) for v in values)
        warnings.append(
            PredictionWarning(
                column=name,
                values=values,
                rows=hits[:MAX_LISTED_ERRORS],
                count=len(hits),
                message=f"{len(hits)} row(s) have a {name!r} never seen in training ({named}): "
                "the model treats it as an unknown category",
            )
        )
    return warnings


def _check_outputs(outputs: list[list[float]]) -> None:
    """Never answer null: a row whose output is not finite (an extreme input overflowed
    inside the network) is a 422 naming the row."""
    bad = [i for i, out in enumerate(outputs) if not all(math.isfinite(v) for v in out)]
    if bad:
        errors = [
            {
                "loc": ["body", "rows", i],
                "msg": "the model's output for this row is not a finite number; its inputs "
                "are too far outside the training data",
                "type": "value",
            }
            for i in bad
        ]
        listed = ", ".join(str(i) for i in bad[:MAX_LISTED_ERRORS])
        raise ProblemError(
            422,
            f"row(s) {listed}: the model's output is not a finite number; the inputs are too "
            "far outside the training data",
            title="Invalid rows",
            errors=errors,
        )


def shape_predictions(
    dataset: Dataset,
    outputs: list[list[float]],
    warnings: list[PredictionWarning] | None = None,
) -> PredictResponse:
    _check_outputs(outputs)
    warnings = warnings or []
    if dataset.task == "regression":
        return PredictResponse(
            predictions=[Prediction(value=float(out[0])) for out in outputs], warnings=warnings
        )
    classes = dataset.classes or []
    predictions = []
    for out in outputs:
        # Two classes: one sigmoid unit, the probability of the second class.
        probs = [1.0 - out[0], out[0]] if len(classes) == 2 else list(out)
        best = max(range(len(probs)), key=probs.__getitem__)
        predictions.append(
            Prediction(
                label=classes[best],
                probabilities={str(c): float(p) for c, p in zip(classes, probs, strict=True)},
            )
        )
    return PredictResponse(predictions=predictions, warnings=warnings)
