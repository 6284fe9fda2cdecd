"""Two scikit-learn models every job is compared with: a linear one and gradient boosting.

Scored on exactly the search's protocol: fitted on the search's training rows, scored on
its validation rows (the same `Split`), or, for a cross-validated job, the mean over the
same folds (then refit on every training row for the test score), with the objective's
metric computed as Keras computes it; and, when the job holds rows out, on the test rows
as well. A search whose best trial does not beat these has not earned its network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.search.table_profiles import category_strings

BASELINES = ("linear", "gradient_boosting")


def raw_inputs(columns: list[dict[str, Any]], frame: pd.DataFrame) -> pd.DataFrame:
    """The dataset's input columns as the baselines read them: numbers (unparseable ones
    missing), categories as strings with missing values their own category, as the
    search's model sees them."""
    values: dict[str, Any] = {}
    for column in columns:
        series = frame[column["name"]]
        if column["kind"] == "numeric":
            values[column["name"]] = pd.to_numeric(series, errors="coerce").astype("float64")
        else:
            values[column["name"]] = category_strings(series)
    return pd.DataFrame(values, index=frame.index)


def preprocessing(columns: list[dict[str, Any]]) -> ColumnTransformer:
    """Median imputation and standardisation of numbers, one-hot of categories."""
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"]
    categorical = [c["name"] for c in columns if c["kind"] == "categorical"]
    return ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            # Dense: gradient boosting takes no sparse input. Unknown categories: all zeros.
            (
                "categories",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
        ]
    )


def make_baseline(name: str, task: str, columns: list[dict[str, Any]], seed: int) -> Pipeline:
    if task == "classification":
        model: Any = (
            LogisticRegression(max_iter=1000)
            if name == "linear"
            else HistGradientBoostingClassifier(random_state=seed)
        )
    else:
        model = Ridge() if name == "linear" else HistGradientBoostingRegressor(random_state=seed)
    return make_pipeline(preprocessing(columns), model)


def _probabilities(model: Pipeline, x: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Every class's probability, also those absent from the training rows (zero)."""
    proba = np.zeros((len(x), n_classes))
    proba[:, model.classes_.astype(int)] = model.predict_proba(x)
    return proba


def metric_value(
    metric: str, model: Pipeline, x: pd.DataFrame, y: np.ndarray, task: str, n_classes: int
) -> float:
    """`metric` (an objective name: val_accuracy, loss, mae, ...) of `model` on rows x, y,
    as Keras computes it: loss is the compiled loss (crossentropy, or MSE for regression)."""
    base = metric.removeprefix("val_")
    if base == "accuracy":
        return float(accuracy_score(y, model.predict(x)))
    if base == "mae":
        return float(mean_absolute_error(y, model.predict(x)))
    if base != "loss":
        raise ValueError(f"no baseline for the metric {metric!r}")
    if task == "classification":
        # Keras clips probabilities away from 0 and 1 (epsilon 1e-7) before the log.
        proba = np.clip(_probabilities(model, x, n_classes), 1e-7, 1 - 1e-7)
        return float(log_loss(y, proba, labels=list(range(n_classes))))
    return float(mean_squared_error(y, model.predict(x)))


def score_baselines(
    *,
    columns: list[dict[str, Any]],
    frame: pd.DataFrame,
    y: np.ndarray,
    task: str,
    classes: list[Any] | None,
    split: Any,
    objective: str,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """{"linear": {"score", "fold_scores"?, "test_score"?}, "gradient_boosting": {...}}.
    `split` is the search's (tuner_jobs.search.split.Split); an objective on the training
    metric ("loss", not "val_loss") is scored on the training rows, as Keras reports it."""
    x = raw_inputs(columns, frame)
    target = y.astype("int64") if task == "classification" else y.astype("float64")
    n_classes = len(classes or [])
    # With cross-validation, the search's protocol is its folds: fit on each fold's
    # training rows, score its validation rows, take the mean; then refit on them all.
    protocol = list(split.folds) or [(split.train, split.validation)]
    validated = objective.startswith("val_")

    def fitted(name: str, rows: np.ndarray) -> Pipeline:
        model = make_baseline(name, task, columns, seed)
        return model.fit(x.iloc[rows], target[rows])

    results: dict[str, dict[str, Any]] = {}
    for name in BASELINES:
        scores = []
        for fit, held in protocol:
            model = fitted(name, fit)
            scored = held if validated else fit
            scores.append(
                metric_value(objective, model, x.iloc[scored], target[scored], task, n_classes)
            )
        result: dict[str, Any] = {"score": float(np.mean(scores))}
        if split.folds:
            result["fold_scores"] = scores
        if len(split.test):
            if split.folds:  # refit on every training row, as the search's best model is
                model = fitted(name, split.train)
            result["test_score"] = metric_value(
                objective, model, x.iloc[split.test], target[split.test], task, n_classes
            )
        results[name] = result
    return results
