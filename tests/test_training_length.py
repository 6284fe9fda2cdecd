"""Training lengths and the time budget derived from the table (app.search.training_length):
shown in the resolved spec with what they came from, the user's own values kept."""

from __future__ import annotations

from typing import Any

import httpx
import keras_tuner as kt
import pytest

from app.errors import ProblemError
from app.search.spec import JobCreate, hyperband_schedule_size, resolve_spec
from app.search.training_length import (
    MAX_BUDGET_S,
    MIN_EPOCHS,
    RUNG_STEPS,
    auto_budget,
    end_phase_seconds,
)
from tests.factories import assert_problem, customers_frame, upload_ok
from tuner_jobs.search.keras_tuner_compat import set_hyperband_min_epochs


def resolved(rows: int, **body: Any) -> Any:
    spec = JobCreate.model_validate({"dataset_id": "d", **body})
    return resolve_spec(
        spec, task="classification", features=4, rows=rows, smallest_class=lambda: rows // 3
    )


def test_a_small_tables_trials_train_for_steps_not_a_fixed_epoch_count() -> None:
    # 150 rows, 5 folds: 120 rows a fit. Batches of 32 would leave an epoch under 4 steps.
    spec = resolved(150).spec
    derivation = spec.derivation
    assert (derivation.fit_rows, derivation.batch_size, derivation.steps_per_epoch) == (120, 16, 8)
    # Epoch cap, patience and the pruner's first judged epoch, each from the steps.
    assert spec.training.epochs == 250  # 2,000 steps
    assert spec.callbacks.early_stopping.patience == 15  # 120 steps
    assert spec.pruning.min_epochs == 8  # 60 steps
    assert set(derivation.derived) == {
        "max_runtime_s",
        "training.epochs",
        "callbacks.early_stopping.patience",
        "pruning.min_epochs",
    }
    # A large table's epochs are many steps: the floor keeps a few passes over its rows.
    large = resolved(100_000).spec
    assert large.derivation.steps_per_epoch == 625
    assert large.training.epochs == MIN_EPOCHS
    assert large.callbacks.early_stopping.patience == 5


def test_the_users_own_lengths_win() -> None:
    spec = resolved(
        150,
        training={"epochs": 7},
        callbacks={"early_stopping": {"patience": 2}, "reduce_lr_on_plateau": {}},
        pruning={"min_epochs": 3},
    ).spec
    assert spec.training.epochs == 7
    assert spec.callbacks.early_stopping.patience == 2
    assert spec.pruning.min_epochs == 3
    # Left to derive: ReduceLROnPlateau's patience, below early stopping's.
    assert spec.callbacks.reduce_lr_on_plateau.patience == 7
    assert spec.derivation.derived == ["max_runtime_s", "callbacks.reduce_lr_on_plateau.patience"]


def test_hyperbands_smallest_rung_ranks_rather_than_guesses() -> None:
    spec = resolved(150, tuner={"algorithm": "hyperband"}, max_runtime_s=None).spec
    steps = spec.derivation.steps_per_epoch
    assert spec.tuner.max_epochs == spec.training.epochs
    assert spec.tuner.min_epochs * steps >= RUNG_STEPS
    # KerasTuner's own oracle, given the rung: no trial trains fewer epochs, and it plans
    # the trials the resolved spec says.
    oracle = kt.oracles.HyperbandOracle(
        objective="val_loss", max_epochs=spec.tuner.max_epochs, factor=3, seed=1
    )
    set_hyperband_min_epochs(oracle, spec.tuner.min_epochs)
    first_rung = oracle._get_epochs(oracle._current_bracket, 0)
    assert spec.tuner.min_epochs <= first_rung < 3 * spec.tuner.min_epochs
    brackets = range(oracle._get_num_brackets())
    planned = sum(oracle._get_size(b, r) for b in brackets for r in range(b + 1))
    assert planned == hyperband_schedule_size(spec.tuner.max_epochs, 3, 1, spec.tuner.min_epochs)


@pytest.mark.parametrize(
    ("body", "budget", "source"),
    [
        ({}, auto_budget(150, 1), "auto"),
        ({"max_runtime_s": "auto", "tuner": {"max_trials": 5}}, auto_budget(150, 1), "auto"),
        ({"tuner": {"max_trials": 5}}, None, None),
        ({"max_runtime_s": None}, None, None),
        ({"max_runtime_s": 45}, 45, "user"),
    ],
)
def test_the_budget_and_where_it_came_from(
    body: dict[str, Any], budget: float | None, source: str | None
) -> None:
    spec = resolved(150, **body).spec
    assert spec.max_runtime_s == budget
    assert spec.derivation.budget_source == source
    # The service's own budget waits for a first completed trial; a user's is kept to.
    assert spec.budget_waits_for_a_trial == (source == "auto")
    if budget is None:
        assert spec.search_seconds is None
    else:
        # The end phase runs inside the budget: the search stops that much earlier.
        assert spec.search_seconds == budget - end_phase_seconds(budget)
        assert 0 < spec.search_seconds < budget


def test_a_budget_shorter_than_a_trial_is_accepted_and_says_so() -> None:
    derivation = resolved(150, max_runtime_s=5).spec.derivation
    assert derivation.trial_estimate_s > 5
    assert "shorter than one trial" in derivation.note
    assert resolved(150).spec.derivation.note is None


def test_the_auto_budget_grows_with_the_table_within_a_cap() -> None:
    small, mid, large = auto_budget(120, 2), auto_budget(2400, 2), auto_budget(10**7, 2)
    assert small <= 120  # about 2 minutes on two cores
    assert 200 <= mid <= 330  # a few thousand rows: about 5 minutes
    assert large == MAX_BUDGET_S
    # Fewer workers (fewer trials at once): a little longer.
    assert auto_budget(120, 1) > small


def test_the_api_shows_the_derivation_and_previews_it(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(rows=150), "churned")
    preview = api.post("/api/v1/jobs/preview", json={"dataset_id": dataset["id"]})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["max_runtime_s"] == body["spec"]["max_runtime_s"] > 0
    assert body["spec"]["derivation"]["steps_per_epoch"] == 8
    # Nothing was queued.
    assert api.get("/api/v1/jobs").json()["total"] == 0
    job = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]}).json()
    assert job["spec"]["derivation"] == body["spec"]["derivation"]
    assert job["progress"]["budget_s"] == job["spec"]["max_runtime_s"]
    assert job["progress"]["remaining_s"] == job["spec"]["max_runtime_s"]
    assert job["progress"]["elapsed_s"] is None


@pytest.mark.parametrize("bad", [0, -1, "soon", [60], 10**9])
def test_a_bad_budget_is_a_422_naming_the_field(api: httpx.Client, bad: Any) -> None:
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    response = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"], "max_runtime_s": bad})
    assert_problem(response, 422, "max_runtime_s")


def test_a_wide_tables_default_space_is_narrowed_to_fit_the_limits() -> None:
    """A job that overrides nothing is never refused for the space the table seeded: 1,500
    inputs seed units up to 4,096, whose largest network passes TUNER_MAX_MODEL_PARAMS."""
    spec = JobCreate.model_validate({"dataset_id": "d"})
    resolution = resolve_spec(spec, task="regression", features=1500, rows=2000)
    units = resolution.search_space["units"]
    assert units["max"] < 4096
    assert units["min"] <= units["default"] <= units["max"]
    assert "search_space.units.max" in resolution.spec.derivation.derived
    # Asked for by the user, the same range is still a 422 naming the field.
    asked = JobCreate.model_validate(
        {"dataset_id": "d", "search_space": {"units": {"type": "pow2", "max": 4096}}}
    )
    with pytest.raises(ProblemError) as refused:
        resolve_spec(asked, task="regression", features=1500, rows=2000)
    assert "TUNER_MAX_MODEL_PARAMS" in refused.value.detail
