"""The verdict: one line when a baseline scores above the job's model on the same rows."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import sqlite_only
from tests.factories import submit, upload_ok, wait_for_job
from tuner_jobs.search.evaluation import verdict_of

BASELINES = {"linear": {"score": 0.953}, "gradient_boosting": {"score": 0.90}}
_ACCURACY = {
    "objective": "val_accuracy",
    "maximize": True,
    "task": "classification",
    "folds": False,
}


def test_a_baseline_above_the_search_is_named_with_both_scores() -> None:
    line = verdict_of(
        BASELINES,
        0.94,
        objective="val_accuracy",
        maximize=True,
        task="classification",
        folds=True,
    )
    assert line == (
        "a logistic regression scores 0.953 (val_accuracy) on the same folds, "
        "above this search's 0.940"
    )


def test_no_verdict_when_the_search_is_as_good() -> None:
    for score in (0.953, 0.97):
        assert (
            verdict_of(
                BASELINES,
                score,
                objective="val_accuracy",
                maximize=True,
                task="classification",
                folds=True,
            )
            is None
        )
    assert verdict_of({"error": "a class is missing"}, 0.5, **_ACCURACY) is None
    assert verdict_of(BASELINES, None, **_ACCURACY) is None


def test_an_objective_to_minimise_is_beaten_from_below() -> None:
    baselines = {"linear": {"score": 12.5}, "gradient_boosting": {"score": 3.25}}
    line = verdict_of(
        baselines, 4.0, objective="val_loss", maximize=False, task="regression", folds=False
    )
    assert line == (
        "gradient boosting scores 3.250 (val_loss) on the same validation rows, "
        "below this search's 4.000"
    )
    assert (
        verdict_of(
            baselines, 3.0, objective="val_loss", maximize=False, task="regression", folds=False
        )
        is None
    )
    # Scores that round alike show as many decimals as tell them apart.
    close = verdict_of(
        {"linear": {"score": 0.95012}},
        0.95034,
        objective="val_loss",
        maximize=False,
        task="regression",
        folds=True,
    )
    assert close is not None
    assert "0.9501 (val_loss)" in close
    assert "0.9503" in close


def separable_frame(rows: int = 100, seed: int = 0) -> pd.DataFrame:
    """Two classes a plane splits with a wide margin: a logistic regression is right on
    every row; a network trained two epochs at a learning rate of 1e-5 barely moves."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    side = x @ np.array([1.0, -1.0, 0.5, 0.0])
    x[:, 0] += np.sign(side) * 2.0  # the margin
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["label"] = np.where(side > 0, "left", "right")
    return frame


@pytest.mark.slow
@sqlite_only
def test_a_table_a_linear_model_wins_gets_a_verdict(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, separable_frame(), "label")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "random_search", "max_trials": 2, "seed": 1},
        training={"epochs": 2, "ensemble": "auto"},
        search_space={
            "num_layers": {"type": "fixed", "value": 1},
            "units": {"type": "pow2", "min": 4, "max": 8},
            "optimizer": {"type": "fixed", "value": "sgd"},
            "learning_rate": {"type": "fixed", "value": 1e-5},
            "batch_size": {"type": "fixed", "value": 32},
        },
        parallel_trials=1,
    )
    start_worker()
    done = wait_for_job(api, job["id"])
    assert done["status"] == "succeeded", done
    linear = done["baselines"]["linear"]["score"]
    assert linear == 1.0
    ensemble = done["ensemble"]  # one split: selected on the validation rows' predictions
    assert ensemble is not None
    assert ensemble["members_are"] == "trial_models"
    model_score = ensemble["score"] if ensemble["used"] else done["best"]["score"]
    assert model_score < linear
    assert done["verdict"] == (
        "a logistic regression scores 1.000 (val_accuracy) on the same validation rows, "
        f"above this search's {model_score:.3f}"
    )
