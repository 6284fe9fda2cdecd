"""The best model scored once, at the end of the search, on the held-out test rows.

Those rows were set aside before the split (tuner_jobs.search.split), so this is the
honest estimate of how the chosen model does on new data: its validation score was what
picked it among the trials, and is biased upwards by that choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from tuner_jobs.search.best_model import best_completed_trial
from tuner_jobs.search.data import TrainingData
from tuner_jobs.search.recorder import finite


def holdout_metrics(
    tuner: Any,
    data: TrainingData,
    *,
    task: str,
    classes: list[Any] | None,
    objective: str,
    model: Any | None = None,
) -> dict[str, Any] | None:
    """{"score", "metric", "trial_id", "rows", what Keras computes (loss, accuracy / mae),
    and a confusion matrix (classification) or MAE, RMSE and R² (regression)}; None when
    the job holds no rows out, or no trial completed. `model`: the best trial's network
    to score instead of its checkpoint's (cross-validation's refit)."""
    if len(data.x_test) == 0:
        return None
    best = best_completed_trial(tuner.oracle)
    if best is None:
        return None
    model = model if model is not None else tuner.load_model(best)
    # evaluate(): the loss and metrics exactly as Keras computed them on validation rows.
    evaluated = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    predicted = np.asarray(model.predict(data.x_test, verbose=0))
    metrics: dict[str, Any] = {
        "score": finite(evaluated[objective.removeprefix("val_")]),
        "metric": objective,
        "trial_id": best.trial_id,
        "rows": len(data.x_test),
        **{name: finite(value) for name, value in evaluated.items()},
    }
    if task == "classification":
        labels = list(classes or [])
        if predicted.shape[-1] == 1:  # one sigmoid unit: the second class's probability
            chosen = (predicted[:, 0] > 0.5).astype("int64")
        else:
            chosen = predicted.argmax(axis=-1)
        matrix = confusion_matrix(
            data.y_test.astype("int64"), chosen, labels=list(range(len(labels)))
        )
        metrics["confusion_matrix"] = matrix.tolist()
        metrics["labels"] = labels
    else:
        truth, estimate = data.y_test.astype("float64"), predicted[:, 0].astype("float64")
        metrics["mae"] = finite(mean_absolute_error(truth, estimate))
        metrics["rmse"] = finite(np.sqrt(mean_squared_error(truth, estimate)))
        # R² needs two rows whose targets differ; otherwise it is undefined (null).
        metrics["r2"] = finite(r2_score(truth, estimate)) if len(truth) > 1 else None
    return metrics
