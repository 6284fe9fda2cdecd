"""The job spec as stored: resolved once at submission (ResolvedSpec), validated again by
the search process that loads it (load_spec), in the shape earlier versions stored."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from app.search.spec import (
    JobCreate,
    ResolvedSpec,
    StoredSpecError,
    load_spec,
    resolve_spec,
)
from app.store.models import Job
from tests.conftest import sqlite_only
from tests.factories import customers_frame, submit, upload_ok, wait_for_job

# What the previous version stored for a bare submission on a classification dataset
# (the jobs table's `spec` JSON, as read back from it): it must still load, unchanged.
STORED_DEFAULT = {
    "dataset_id": "d1",
    "tuner": {
        "algorithm": "hyperband",
        "max_trials": None,
        "max_epochs": 30,
        "factor": 3,
        "hyperband_iterations": 1,
        "executions_per_trial": 1,
        "seed": 42,
    },
    "objective": {"name": "val_accuracy", "direction": "max"},
    "search_space": {},
    "training": {"epochs": 30, "validation_split": 0.2},
    "callbacks": {
        "early_stopping": {
            "monitor": "val_loss",
            "patience": 5,
            "min_delta": 0.0,
            "restore_best_weights": True,
        },
        "reduce_lr_on_plateau": None,
        "tensorboard": False,
    },
    "max_runtime_s": None,
    "parallel_trials": 1,
}

# The same for a random search, unseeded, EarlyStopping off, ReduceLROnPlateau on.
STORED_RANDOM = {
    **STORED_DEFAULT,
    "tuner": {
        **STORED_DEFAULT["tuner"],
        "algorithm": "random_search",
        "max_trials": 20,
        "max_epochs": None,
        "seed": None,
    },
    "callbacks": {
        "early_stopping": None,
        "reduce_lr_on_plateau": {
            "monitor": "val_loss",
            "factor": 0.1,
            "patience": 3,
            "min_lr": 0.0,
            "min_delta": 0.0001,
        },
        "tensorboard": True,
    },
}


# Fields added since that version, with the defaults a spec stored without them loads with.
ADDED_SINCE = [
    "pruning",
    "warm_start",
    "training.test_split",
    "training.cross_validation",
    "training.ensemble",
    "derivation",
    "tuner.min_epochs",
]
# What a spec resolved without the table's size and without a budget derives: nothing.
NOTHING_DERIVED = {
    "fit_rows": None,
    "batch_size": None,
    "steps_per_epoch": None,
    "derived": [],
    "budget_source": None,
    "train_rows": None,
    "workers": None,
    "trial_estimate_s": None,
    "note": None,
    "end_phase_s": 0.0,
}


def with_added_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    current = copy.deepcopy(stored)
    current["training"]["test_split"] = 0.0
    # A spec stored before cross-validation runs as it did: one validation split.
    current["training"]["cross_validation"] = None
    current["training"]["ensemble"] = None  # nor an ensemble, before ensembles
    current["pruning"] = None  # a spec stored before pruning runs as it did: unpruned
    current["warm_start"] = None
    current["derivation"] = None  # nothing was derived from the table before
    current["tuner"]["min_epochs"] = None  # KerasTuner's own smallest rung (1 epoch)
    return current


def unset_fields(model: BaseModel, path: str = "") -> list[str]:
    """Stored fields of `model` (and of the models inside it) left to a default, not filled.
    (A field excluded from dumps is never stored: it has nothing to fill.)"""
    stored = [name for name, field in type(model).model_fields.items() if not field.exclude]
    missing = [f"{path}{name}" for name in stored if name not in model.model_fields_set]
    for name in stored:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            missing += unset_fields(value, f"{path}{name}.")
    return missing


@pytest.mark.parametrize("algorithm", ["hyperband", "random_search", "bayesian", "grid"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_bare_submission_resolves_with_every_field_filled(algorithm: str, task: str) -> None:
    body = JobCreate.model_validate({"dataset_id": "d1", "tuner": {"algorithm": algorithm}})
    spec, space, planned = resolve_spec(body, task=task, features=6)

    assert isinstance(spec, ResolvedSpec)
    assert unset_fields(spec) == []
    assert spec.objective.name == ("val_accuracy" if task == "classification" else "val_loss")
    assert spec.objective.direction == ("max" if task == "classification" else "min")
    # Neither a budget nor max_trials: the budget derived for the table ("auto"), within
    # which a trial-counting algorithm runs as many trials as fit.
    assert spec.derivation is not None
    assert spec.derivation.budget_source == "auto"
    assert spec.max_runtime_s is not None
    assert spec.max_runtime_s > 0
    if algorithm == "hyperband":
        assert spec.tuner.max_epochs == spec.training.epochs == 30
        assert spec.tuner.max_trials is None  # Hyperband's whole schedule: no cap
    else:
        assert spec.tuner.max_trials == 1000
    # Every idle worker helps by default: trials run against a chief (issue 17).
    assert spec.parallel_trials == "auto"
    assert spec.parallel
    # No seed given: one is drawn and recorded, and the split and Keras use that one.
    assert spec.tuner.seed is not None
    assert 0 <= spec.tuner.seed == spec.tuner.rng_seed < 2**31
    assert spec.callbacks.early_stopping is not None
    assert spec.callbacks.early_stopping.patience == 5
    # Without the dataset's row count "auto" cannot choose folds: one validation split.
    assert spec.training.cross_validation is None
    assert "units" in space
    assert planned >= 1


@pytest.mark.parametrize(
    ("body", "algorithm", "max_trials"),
    [
        # Nothing given: the derived budget, and TPE within it.
        ({}, "tpe", 1000),
        # No budget (null): Hyperband's whole schedule, as before budgets were derived.
        ({"max_runtime_s": None}, "hyperband", None),
        # Trials named and no budget: the trials are the budget.
        ({"tuner": {"max_trials": 7}}, "hyperband", 7),
        ({"max_runtime_s": "auto", "tuner": {"max_trials": 7}}, "tpe", 7),
        # A time budget without an algorithm: TPE, searching as long as the budget lasts.
        ({"max_runtime_s": 40}, "tpe", 1000),
        ({"max_runtime_s": 40, "tuner": {"max_trials": 7}}, "tpe", 7),
        # An algorithm asked for is kept; under a budget its trials are the budget's too.
        ({"max_runtime_s": 40, "tuner": {"algorithm": "hyperband"}}, "hyperband", None),
        ({"max_runtime_s": 40, "tuner": {"algorithm": "random_search"}}, "random_search", 1000),
        ({"tuner": {"algorithm": "tpe"}, "max_runtime_s": None}, "tpe", 20),
        ({"tuner": {"algorithm": "tpe"}}, "tpe", 1000),
        # Within TUNER_MAX_SEARCH_EPOCHS (1,000,000): 1,000 trials of 5,000 epochs are not.
        ({"max_runtime_s": 40, "training": {"epochs": 5000}}, "tpe", 200),
    ],
)
def test_the_algorithm_and_trials_a_time_budget_resolves_to(
    body: dict[str, Any], algorithm: str, max_trials: int | None
) -> None:
    spec, _, planned = resolve_spec(
        JobCreate.model_validate({"dataset_id": "d1", **body}), task="classification", features=6
    )
    assert (spec.tuner.algorithm, spec.tuner.max_trials) == (algorithm, max_trials)
    if max_trials is not None:
        assert planned == max_trials
    # Pruning follows the algorithm decided: Hyperband prunes by its brackets.
    assert (spec.pruning is None) == (algorithm == "hyperband")


def test_the_stored_shape_is_the_previous_versions() -> None:
    body = JobCreate.model_validate(
        {"dataset_id": "d1", "tuner": {"seed": 42}, "max_runtime_s": None}
    )
    stored = resolve_spec(body, task="classification", features=6).spec.model_dump(mode="json")
    # The defaults that changed: a new job lends its trials to idle workers, and ends with
    # an ensemble of its best trials. A stored 1 (a stored spec without an ensemble) still
    # loads as 1 (without one), below.
    expected = {
        **with_added_defaults(STORED_DEFAULT),
        "parallel_trials": "auto",
        "derivation": NOTHING_DERIVED,
    }
    expected["training"]["ensemble"] = "auto"
    assert stored == expected
    body = JobCreate.model_validate(
        {
            "dataset_id": "d1",
            "tuner": {"algorithm": "random_search", "seed": None},
            "max_runtime_s": None,
            "callbacks": {
                "early_stopping": False,
                "reduce_lr_on_plateau": True,
                "tensorboard": True,
            },
        }
    )
    stored = resolve_spec(body, task="classification", features=6).spec.model_dump(mode="json")
    # A null seed is no longer an unseeded search: a seed is drawn and stored.
    assert isinstance(stored["tuner"].pop("seed"), int)
    expected = {**with_added_defaults(STORED_RANDOM), "parallel_trials": "auto"}
    del expected["tuner"]["seed"]
    expected["pruning"] = {"rule": "median", "min_epochs": 3}  # on by default, but Hyperband
    expected["derivation"] = NOTHING_DERIVED
    expected["training"]["ensemble"] = "auto"
    assert stored == expected


@pytest.mark.parametrize("stored", [STORED_DEFAULT, STORED_RANDOM], ids=["default", "random"])
def test_a_spec_stored_by_the_previous_version_loads_unchanged(stored: dict[str, Any]) -> None:
    spec = load_spec(copy.deepcopy(stored))
    assert spec.model_dump(mode="json") == with_added_defaults(stored)
    assert sorted(unset_fields(spec)) == sorted(ADDED_SINCE)


def test_an_unseeded_search_seeds_keras_and_the_split_with_zero() -> None:
    spec = load_spec(STORED_RANDOM)
    assert spec.tuner.seed is None  # KerasTuner gets None: a random search
    assert spec.tuner.rng_seed == 0


def test_what_the_api_stores_round_trips(api: httpx.Client, engine: Engine) -> None:
    dataset = upload_ok(api, customers_frame(rows=60), target="churned")
    job = submit(
        api,
        dataset["id"],
        tuner={"algorithm": "grid", "max_trials": 7, "seed": 3},
        search_space={"num_layers": {"type": "int", "min": 1, "max": 2}},
        callbacks={"reduce_lr_on_plateau": {"patience": 2}},
        parallel_trials=2,
        max_runtime_s=600,
    )
    with Session(engine) as session:
        stored = session.scalars(select(Job.spec).where(Job.id == job["id"])).one()
    spec = ResolvedSpec.model_validate(stored)
    assert spec.model_dump(mode="json") == stored == job["spec"]
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["spec"] == stored
    assert spec.tuner.max_trials == 7
    assert spec.tuner.rng_seed == 3
    assert spec.parallel
    assert spec.max_runtime_s == 600
    assert spec.callbacks.reduce_lr_on_plateau is not None
    assert spec.callbacks.reduce_lr_on_plateau.patience == 2
    assert spec.callbacks.reduce_lr_on_plateau.min_delta == 1e-4


def _tampered(**tuner: Any) -> dict[str, Any]:
    stored = copy.deepcopy(STORED_DEFAULT)
    stored["tuner"].update(tuner)
    return stored


@pytest.mark.parametrize(
    ("stored", "needles"),
    [
        (_tampered(seed="forty-two"), ["tuner.seed", "valid integer", "'forty-two'"]),
        (_tampered(max_epochs=None), ["tuner", "max_epochs must be resolved for hyperband"]),
        (_tampered(algorithm="random_search", max_trials=None), ["max_trials must be resolved"]),
        (
            {**STORED_DEFAULT, "callbacks": {"early_stopping": {"patience": "five"}}},
            ["callbacks.early_stopping.patience"],
        ),
        (
            {**STORED_DEFAULT, "objective": {"name": "val_loss"}},
            ["objective.direction", "required"],
        ),
        ({**STORED_DEFAULT, "surprise": 1}, ["surprise", "Extra inputs are not permitted"]),
        ("not a spec", ["spec:"]),
    ],
    ids=[
        "wrong-type",
        "hyperband-unresolved",
        "cap-unresolved",
        "nested",
        "missing",
        "extra",
        "str",
    ],
)
def test_a_tampered_stored_spec_fails_to_load_naming_the_field(
    stored: Any, needles: list[str]
) -> None:
    with pytest.raises(StoredSpecError) as raised:
        load_spec(stored)
    message = str(raised.value)
    assert message.startswith("the job's stored spec is not valid: ")
    for needle in needles:
        assert needle in message, message


@pytest.mark.slow
@sqlite_only
def test_a_tampered_stored_spec_fails_the_job_not_the_worker(
    api: httpx.Client, engine: Engine, start_worker: Any
) -> None:
    """A real worker and search process: the job fails with the bad field's name, before
    TensorFlow is paid for, and the worker lives on."""
    dataset = upload_ok(api, customers_frame(rows=60), target="churned")
    job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 1})
    tampered = {**job["spec"], "tuner": {**job["spec"]["tuner"], "seed": "forty-two"}}
    with Session(engine) as session, session.begin():
        session.execute(update(Job).where(Job.id == job["id"]).values(spec=tampered))
    worker = start_worker()

    done = wait_for_job(api, job["id"], timeout=120)

    assert done["status"] == "failed"
    assert done["error"].startswith("StoredSpecError: the job's stored spec is not valid"), done
    assert "tuner.seed" in done["error"]
    assert "'forty-two'" in done["error"]
    assert worker.proc.poll() is None, "the worker must outlive its job's bad spec"
