"""Effective search space -> KerasTuner HyperParameters: the same a user would write by hand."""

from __future__ import annotations

from typing import Any

import httpx
import keras_tuner as kt
import pytest

from app.search.search_space import effective_search_space
from tests.factories import customers_frame, submit, upload_ok
from tuner_jobs.search.hyperparameters import active_values, build_hyperparameters


def _by_hand_defaults_for_40_inputs() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    # Zero hidden layers (a linear model) is in reach; the search starts from one.
    hp.Int("num_layers", 0, 3, step=1, sampling="linear", default=1)
    with hp.conditional_scope("num_layers", [1, 2, 3]):
        hp.Int("units_0", 32, 256, step=2, sampling="log", default=128)
    with hp.conditional_scope("num_layers", [2, 3]):
        hp.Int("units_1", 32, 256, step=2, sampling="log", default=128)
    with hp.conditional_scope("num_layers", [3]):
        hp.Int("units_2", 32, 256, step=2, sampling="log", default=128)
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Choice("batch_size", [32, 64, 128], default=32)
    hp.Fixed("l2", 0.0)
    hp.Fixed("batch_norm", False)
    return hp


def _by_hand_mixed() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Choice("num_layers", [1, 2])
    hp.Int("units_0", 16, 64, step=16, sampling="linear")
    with hp.conditional_scope("num_layers", [2]):
        hp.Int("units_1", 16, 64, step=16, sampling="linear")
    hp.Fixed("activation", "gelu")
    hp.Float("dropout", 0.1, 0.3, sampling="linear", default=0.2)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "sgd", "adamw"], default="sgd")
    hp.Float("learning_rate", 1e-5, 1e-1, step=10, sampling="log")
    hp.Int("batch_size", 16, 128, step=2, sampling="log")
    hp.Float("l2", 0.0, 0.01, sampling="linear")
    hp.Boolean("batch_norm", default=True)
    return hp


MIXED = {
    "num_layers": {"type": "choice", "values": [1, 2]},
    "units": {"type": "int", "min": 16, "max": 64, "step": 16},
    "activation": {"type": "fixed", "value": "gelu"},
    "dropout": {"type": "float", "min": 0.1, "max": 0.3, "default": 0.2},
    "optimizer": {"type": "choice", "values": ["adam", "sgd", "adamw"], "default": "sgd"},
    "learning_rate": {"type": "float", "min": 1e-5, "max": 1e-1, "step": 10, "sampling": "log"},
    "batch_size": {"type": "pow2", "min": 16, "max": 128},
    "l2": {"type": "float", "min": 0, "max": 0.01},
    "batch_norm": {"type": "boolean", "default": True},
}


def _by_hand_two_or_four_layers() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Choice("num_layers", [4, 2])
    # Every model has layers 0 and 1, so their widths need no condition.
    hp.Int("units_0", 2, 16, step=2, sampling="log", default=8)
    hp.Int("units_1", 2, 16, step=2, sampling="log", default=8)
    with hp.conditional_scope("num_layers", [4]):
        hp.Int("units_2", 2, 16, step=2, sampling="log", default=8)
    with hp.conditional_scope("num_layers", [4]):
        hp.Int("units_3", 2, 16, step=2, sampling="log", default=8)
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Choice("batch_size", [32, 64, 128], default=32)
    hp.Fixed("l2", 0.0)
    hp.Fixed("batch_norm", False)
    return hp


def _by_hand_fixed_two_layers() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Fixed("num_layers", 2)
    hp.Choice("units_0", [8, 32])
    hp.Choice("units_1", [8, 32])
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Choice("dropout", [0.0, 0.25])
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Fixed("learning_rate", 0.01)
    hp.Choice("batch_size", [32, 64, 128], default=32)
    hp.Fixed("l2", 0.0)
    hp.Fixed("batch_norm", False)
    return hp


def _by_hand_one_or_three_layers() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Choice("num_layers", [1, 3])
    hp.Int("units_0", 32, 256, step=2, sampling="log", default=128)
    # Layers 1 and 2 exist only in the three-layer network.
    with hp.conditional_scope("num_layers", [3]):
        hp.Int("units_1", 32, 256, step=2, sampling="log", default=128)
    with hp.conditional_scope("num_layers", [3]):
        hp.Int("units_2", 32, 256, step=2, sampling="log", default=128)
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Choice("batch_size", [32, 64, 128], default=32)
    hp.Fixed("l2", 0.0)
    hp.Fixed("batch_norm", False)
    return hp


def _by_hand_stepped_layers_log_units() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Int("num_layers", 2, 4, step=2, sampling="linear")
    hp.Int("units_0", 8, 100, sampling="log")
    hp.Int("units_1", 8, 100, sampling="log")
    with hp.conditional_scope("num_layers", [4]):
        hp.Int("units_2", 8, 100, sampling="log")
    with hp.conditional_scope("num_layers", [4]):
        hp.Int("units_3", 8, 100, sampling="log")
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Float("learning_rate", 1e-5, 1e-1, step=10, sampling="log")
    hp.Int("batch_size", 16, 128, step=2, sampling="log", default=32)
    hp.Fixed("l2", 0.0)
    hp.Fixed("batch_norm", False)
    return hp


def _by_hand_two_layers_by_default_boolean_choice() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Int("num_layers", 1, 3, sampling="linear", default=2)
    hp.Int("units_0", 4, 32, step=2, sampling="log", default=16)
    with hp.conditional_scope("num_layers", [2, 3]):
        hp.Int("units_1", 4, 32, step=2, sampling="log", default=16)
    with hp.conditional_scope("num_layers", [3]):
        hp.Int("units_2", 4, 32, step=2, sampling="log", default=16)
    hp.Choice("activation", ["relu", "tanh"], default="relu")
    hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
    hp.Choice("kernel_initializer", ["glorot_uniform", "he_normal"], default="glorot_uniform")
    hp.Choice("optimizer", ["adam", "rmsprop"], default="adam")
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Fixed("batch_size", 64)
    hp.Fixed("l2", 0.0)
    hp.Choice("batch_norm", [True, False], default=False)
    return hp


@pytest.mark.parametrize(
    ("user_space", "features", "by_hand"),
    [
        pytest.param({}, 40, _by_hand_defaults_for_40_inputs, id="defaults-40-inputs"),
        pytest.param(MIXED, 40, _by_hand_mixed, id="int-step-float-log-choice-boolean-fixed"),
        pytest.param(
            {"num_layers": {"type": "choice", "values": [4, 2]}},
            3,
            _by_hand_two_or_four_layers,
            id="two-or-four-layers",
        ),
        pytest.param(
            {
                "num_layers": {"type": "fixed", "value": 2},
                "units": {"type": "choice", "values": [8, 32]},
                # Whole numbers in JSON: KerasTuner needs one type per Choice.
                "dropout": {"type": "choice", "values": [0, 0.25]},
                "learning_rate": {"type": "fixed", "value": 0.01},
            },
            3,
            _by_hand_fixed_two_layers,
            id="fixed-two-layers",
        ),
        pytest.param(
            {"num_layers": {"type": "choice", "values": [1, 3]}, "units": {"type": "pow2"}},
            40,
            _by_hand_one_or_three_layers,
            id="one-or-three-layers",
        ),
        pytest.param(
            {
                "num_layers": {"type": "int", "min": 2, "max": 4, "step": 2},
                "units": {"type": "int", "min": 8, "max": 100, "sampling": "log"},
                "learning_rate": {
                    "type": "float",
                    "min": 1e-5,
                    "max": 1e-1,
                    "step": 10,
                    "sampling": "log",
                },
                "batch_size": {"type": "pow2", "min": 16, "max": 128, "default": 32},
            },
            3,
            _by_hand_stepped_layers_log_units,
            id="stepped-layers-log-int-units",
        ),
        pytest.param(
            {
                "num_layers": {"type": "int", "min": 1, "max": 3, "default": 2},
                "batch_norm": {"type": "choice", "values": [True, False], "default": False},
                "batch_size": {"type": "fixed", "value": 64},
            },
            5,
            _by_hand_two_layers_by_default_boolean_choice,
            id="two-layers-by-default-boolean-choice",
        ),
    ],
)
def test_translation_matches_hand_written_hyperparameters(
    user_space: dict[str, Any], features: int, by_hand: Any
) -> None:
    space = effective_search_space(user_space, features=features)
    assert build_hyperparameters(space).get_config() == by_hand().get_config()


def _seeded_random_trials(hp: kt.HyperParameters) -> list[dict[str, Any]]:
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_loss", "min"), max_trials=12, seed=7, hyperparameters=hp
    )
    return [oracle.populate_space(str(trial))["values"] for trial in range(12)]


@pytest.mark.parametrize(
    ("user_space", "features", "by_hand"),
    [
        pytest.param({}, 40, _by_hand_defaults_for_40_inputs, id="defaults-40-inputs"),
        pytest.param(MIXED, 40, _by_hand_mixed, id="int-step-float-log-choice-boolean-fixed"),
    ],
)
def test_a_seeded_search_samples_the_trials_of_the_hand_written_space(
    user_space: dict[str, Any], features: int, by_hand: Any
) -> None:
    space = effective_search_space(user_space, features=features)
    trials = _seeded_random_trials(build_hyperparameters(space))
    assert trials == _seeded_random_trials(by_hand())
    assert len({repr(sorted(t.items())) for t in trials}) == len(trials)  # really sampled
    for trial in trials:  # a trial samples a width only for the layers its model has
        widths = {name for name in trial if name.startswith("units_")}
        assert widths == {f"units_{layer}" for layer in range(trial["num_layers"])}


def test_pow2_becomes_a_log_sampled_int_with_step_two() -> None:
    space = effective_search_space(
        {"num_layers": {"type": "fixed", "value": 1}, "units": {"type": "pow2", "max": 64}},
        features=40,
    )
    units = build_hyperparameters(space).space[1]

    by_hand = kt.HyperParameters()
    by_hand.Int("units_0", 32, 64, step=2, sampling="log")
    assert units.get_config() == by_hand.space[0].get_config()
    assert isinstance(units, kt.engine.hyperparameters.Int)
    assert (units.name, units.min_value, units.max_value) == ("units_0", 32, 64)
    assert (units.step, units.sampling) == (2, "log")
    assert [int(v) for v in units.values] == [32, 64]


def test_only_the_layers_a_model_has_are_active() -> None:
    hp = build_hyperparameters(effective_search_space({}, features=40))
    assert hp.values["num_layers"] == 1
    assert set(active_values(hp)) == {
        "num_layers",
        "units_0",
        "activation",
        "dropout",
        "kernel_initializer",
        "optimizer",
        "learning_rate",
        "batch_size",
        "l2",
        "batch_norm",
    }
    # A trial with two layers that inherited a third width keeps only what its model uses.
    hp.values.update({"num_layers": 2, "units_1": 64, "units_2": 256, "tuner/epochs": 4})
    assert active_values(hp)["units_1"] == 64
    assert "units_2" not in active_values(hp)
    assert "tuner/epochs" not in active_values(hp)


def test_a_job_search_space_read_back_from_the_database_builds(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    submitted = submit(
        api,
        dataset["id"],
        search_space={
            "dropout": {"type": "choice", "values": [0, 0.2, 0.5]},
            "batch_size": {"type": "choice", "values": [32.0, 64]},
            "l2": {"type": "fixed", "value": 0},
        },
    )
    space = api.get(f"/api/v1/jobs/{submitted['id']}").json()["search_space"]

    hp = build_hyperparameters(space)
    by_name = {p.name: p for p in hp.space}
    assert list(by_name["dropout"].values) == [0.0, 0.2, 0.5]
    assert list(by_name["batch_size"].values) == [32, 64]
    assert [type(v) for v in (*by_name["dropout"].values, by_name["l2"].value)] == [float] * 4
