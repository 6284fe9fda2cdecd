"""The search-space language without a database: seeding, merging, grid and Hyperband sizes.

Grid and Hyperband sizes are checked against KerasTuner's own oracles, driven trial by trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras_tuner as kt
import pytest

from app.errors import ProblemError
from app.search.search_space import (
    default_search_space,
    effective_search_space,
    recommended_units,
    units_range,
)
from app.search.space_values import grid_size
from app.search.spec import hyperband_schedule_size
from tuner_jobs.search.hyperparameters import build_hyperparameters

# KerasTuner's oracle calls threading.currentThread() on every trial.
pytestmark = [
    pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName:DeprecationWarning"),
]


@pytest.mark.parametrize(
    ("features", "recommended", "low", "high"),
    [
        (1, 2, 1, 4),  # 2 * 1 = 2 = 2^1; 2^(1-2) rounds up to one unit
        (3, 8, 2, 16),  # 6 -> 2^3
        (40, 128, 32, 256),  # 80 -> 2^7, the worked example of the source notes
        (64, 128, 32, 256),  # 128 is already a power of two
        (1000, 2048, 512, 4096),  # 2000 -> 2^11
    ],
)
def test_power_of_two_seeding(features: int, recommended: int, low: int, high: int) -> None:
    assert recommended_units(features) == recommended
    assert units_range(features) == (low, high)
    assert default_search_space(features)["units"] == {
        "type": "pow2",
        "min": low,
        "max": high,
        "default": recommended,
    }
    assert effective_search_space(None, features=features)["units"] == {
        "type": "pow2",
        "min": low,
        "max": high,
        "default": recommended,
    }


def test_user_entries_replace_defaults_and_the_rest_stay() -> None:
    user = {
        "activation": {"type": "choice", "values": ["gelu", "selu"]},
        "learning_rate": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
        "batch_norm": {"type": "boolean"},
    }
    space = effective_search_space(user, features=40)
    defaults = default_search_space(40)

    assert list(space) == list(defaults)
    assert space["activation"] == {"type": "choice", "values": ["gelu", "selu"]}
    assert space["learning_rate"] == {
        "type": "float",
        "min": 1e-3,
        "max": 1e-1,
        "sampling": "log",
    }
    assert space["batch_norm"] == {"type": "boolean", "default": False}
    untouched = set(defaults) - set(user)
    assert {name: space[name] for name in untouched} == {n: defaults[n] for n in untouched}


@pytest.mark.parametrize(
    ("entry", "bounds"),
    [
        ({"type": "pow2"}, (32, 256)),
        ({"type": "pow2", "max": 64}, (32, 64)),  # only max: min stays seeded
        ({"type": "pow2", "max": 16}, (16, 16)),  # a max under the seeded min pulls it down
        ({"type": "pow2", "min": 64}, (64, 256)),  # only min: max stays seeded
        ({"type": "pow2", "min": 1024}, (1024, 1024)),  # a min over the seeded max lifts it
        ({"type": "pow2", "min": 4, "max": 8}, (4, 8)),
    ],
)
def test_pow2_bounds_left_out_are_seeded_from_the_width(
    entry: dict[str, Any], bounds: tuple[int, int]
) -> None:
    units = effective_search_space({"units": entry}, features=40)["units"]
    assert (units["min"], units["max"]) == bounds


def test_pow2_batch_size_is_seeded_from_its_own_range_not_the_width() -> None:
    space = effective_search_space({"batch_size": {"type": "pow2", "max": 64}}, features=1000)
    assert space["batch_size"] == {"type": "pow2", "min": 16, "max": 64}


def test_numbers_are_cast_to_the_hyperparameter_kind() -> None:
    # JSON has no 0.0 vs 0, and KerasTuner's Choice refuses a mix of ints and floats.
    space = effective_search_space(
        {
            "dropout": {"type": "choice", "values": [0, 0.25, 0.5], "default": 0},
            "batch_size": {"type": "choice", "values": [32.0, 64]},
            "num_layers": {"type": "fixed", "value": 2.0},
            "l2": {"type": "fixed", "value": 0},
        },
        features=4,
    )
    assert space["dropout"] == {"type": "choice", "values": [0.0, 0.25, 0.5], "default": 0.0}
    assert [type(v) for v in space["dropout"]["values"]] == [float, float, float]
    assert space["batch_size"]["values"] == [32, 64]
    assert [type(v) for v in space["batch_size"]["values"]] == [int, int]
    assert type(space["num_layers"]["value"]) is int
    assert type(space["l2"]["value"]) is float


def test_every_problem_is_reported_with_its_field() -> None:
    with pytest.raises(ProblemError) as raised:
        effective_search_space(
            {
                "neurons": {"type": "int", "min": 1, "max": 2},
                "units": {"type": "pow2", "min": 8, "max": 16, "default": 32},
                "dropout": {"type": "float", "min": 0.2, "max": 1.5},
            },
            features=4,
        )
    error = raised.value
    assert error.status == 422
    # A union's errors name the branch too (["body", "search_space", "units", "pow2"]).
    assert [e["loc"][:3] for e in error.errors or []] == [
        ["body", "search_space", "neurons"],
        ["body", "search_space", "units"],
        ["body", "search_space", "dropout"],
    ]
    assert "default 32 is outside [8, 16]" in error.detail
    assert "dropout must be < 1" in error.detail


# --- Grid size, against KerasTuner's GridSearchOracle ---------------------------------


def _oracle_trials(oracle: kt.Oracle, project: Path, score: str) -> int:
    """Run `oracle` to exhaustion with instant trials; how many it created."""
    oracle._set_project_dir(str(project), "p")
    created = 0
    while (trial := oracle.create_trial("tuner0")).status == "RUNNING":
        oracle.update_trial(trial.trial_id, {"score": trial.hyperparameters.get(score)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        created += 1
    return created


def _keras_tuner_grid(space: dict[str, Any], project: Path) -> int:
    oracle = kt.oracles.GridSearchOracle(
        objective=kt.Objective("score", "max"),
        max_trials=100_000,
        hyperparameters=build_hyperparameters(space),
    )
    return _oracle_trials(oracle, project, "num_layers")


ONE_LAYER = {"num_layers": {"type": "fixed", "value": 1}, "units": {"type": "fixed", "value": 8}}


def test_grid_size_counts_per_layer_units_per_layer() -> None:
    space = {
        "num_layers": {"type": "int", "min": 1, "max": 3},
        "units": {"type": "pow2", "min": 8, "max": 32},
        "activation": {"type": "choice", "values": ["relu", "tanh"]},
        "l2": {"type": "fixed", "value": 0.0},
    }
    # 3 widths and 2 activations: 3 * 2 + 3^2 * 2 + 3^3 * 2
    assert grid_size(space) == 6 + 18 + 54


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        pytest.param(
            {
                "num_layers": {"type": "int", "min": 1, "max": 3},
                "units": {"type": "pow2", "min": 8, "max": 32},
                "activation": {"type": "choice", "values": ["relu", "tanh"]},
            },
            78,
            id="layers-1-to-3",
        ),
        pytest.param(
            {
                "num_layers": {"type": "choice", "values": [1, 3]},
                "units": {"type": "choice", "values": [8, 16, 32], "default": 16},
                "batch_norm": {"type": "boolean"},
            },
            3 * 2 + 27 * 2,
            id="layers-1-or-3",
        ),
        pytest.param(
            {**ONE_LAYER, "dropout": {"type": "float", "min": 0.0, "max": 0.5, "step": 0.1}},
            5,  # KerasTuner's (0.5 - 0.0) // 0.1 is 4.0: 0.5 itself is never tried
            id="float-step",
        ),
        pytest.param(
            {
                **ONE_LAYER,
                "dropout": {"type": "float", "min": 0, "max": 0.5, "step": 0.1, "default": 0.25},
            },
            6,  # the grid starts at the default, which is not a step
            id="float-step-default-off-grid",
        ),
        pytest.param(
            {
                **ONE_LAYER,
                "learning_rate": {
                    "type": "float",
                    "min": 1e-4,
                    "max": 1e-2,
                    "step": 10,
                    "sampling": "log",
                },
            },
            3,
            id="float-log-step",
        ),
        pytest.param(
            {
                **ONE_LAYER,
                "learning_rate": {
                    "type": "float",
                    "min": 1e-4,
                    "max": 1e-2,
                    "sampling": "log",
                    "default": 1e-3,
                },
            },
            11,  # ten points, plus the default
            id="float-log-continuous",
        ),
        pytest.param(
            {
                "num_layers": {"type": "fixed", "value": 1},
                "units": {"type": "int", "min": 1, "max": 1000, "sampling": "log"},
            },
            10,
            id="int-log-without-step",
        ),
        pytest.param(
            {
                "num_layers": {"type": "int", "min": 1, "max": 3, "sampling": "log"},
                "units": {"type": "int", "min": 2, "max": 10, "step": 4, "default": 4},
            },
            4 + 16 + 64,  # units 4 (the default), 2, 6, 10 on each of 1, 2 or 3 layers
            id="int-log-layers-and-off-step-default",
        ),
    ],
)
def test_grid_size_matches_keras_tuner(
    space: dict[str, Any], expected: int, tmp_path: Path
) -> None:
    assert grid_size(space) == expected
    assert _keras_tuner_grid(space, tmp_path) == expected


def test_grid_size_of_a_default_space_with_one_layer(tmp_path: Path) -> None:
    space = effective_search_space(
        {
            "num_layers": {"type": "fixed", "value": 1},
            "learning_rate": {"type": "fixed", "value": 1e-3},
            "kernel_initializer": {"type": "fixed", "value": "he_normal"},
            "batch_size": {"type": "fixed", "value": 32},
        },
        features=3,
    )
    # seeded units 2..16 (4), activation 2, dropout 0..0.4 (5), optimizer 2
    assert grid_size(space) == 4 * 2 * 5 * 2
    assert _keras_tuner_grid(space, tmp_path) == grid_size(space)


# --- Hyperband schedule, against KerasTuner's HyperbandOracle -------------------------


@pytest.mark.parametrize(
    ("max_epochs", "factor"), [(1, 3), (2, 2), (9, 3), (10, 3), (30, 3), (81, 3), (100, 10)]
)
def test_hyperband_schedule_size_matches_the_oracle(max_epochs: int, factor: int) -> None:
    oracle = kt.oracles.HyperbandOracle(
        objective=kt.Objective("val_loss", "min"), max_epochs=max_epochs, factor=factor
    )
    brackets = oracle._get_num_brackets()
    per_iteration = sum(
        oracle._get_size(bracket, round_num)
        for bracket in range(brackets)
        for round_num in range(bracket + 1)
    )
    assert hyperband_schedule_size(max_epochs, factor, 1) == per_iteration
    assert hyperband_schedule_size(max_epochs, factor, 3) == 3 * per_iteration


@pytest.mark.parametrize(
    ("max_epochs", "factor", "iterations", "trials"),
    [(9, 3, 1, 23), (10, 3, 1, 30), (20, 4, 2, 88)],
)
def test_hyperband_schedule_size_is_what_the_oracle_creates(
    max_epochs: int, factor: int, iterations: int, trials: int, tmp_path: Path
) -> None:
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = kt.oracles.HyperbandOracle(
        objective=kt.Objective("score", "max"),
        max_epochs=max_epochs,
        factor=factor,
        hyperband_iterations=iterations,
        hyperparameters=hp,
        seed=1,
    )
    assert hyperband_schedule_size(max_epochs, factor, iterations) == trials
    assert _oracle_trials(oracle, tmp_path, "x") == trials
