"""GET /jobs/{id}/importance: Optuna's PED-ANOVA over a job's completed trials.

Most jobs here are written straight into the database, with scores built so that one
hyperparameter alone decides them; one real search reaches the endpoint end to end.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update

from app.errors import ProblemError
from app.search.importance import ScoredTrial, hyperparameter_importance
from app.search.search_space import effective_search_space
from app.settings import Settings
from app.store.models import Job, Trial, utcnow
from app.store.unit_of_work import write_session
from tests.browser import TrialRows, insert_job
from tests.conftest import LiveServer, sqlite_only
from tests.factories import assert_problem, customers_frame, submit, upload_ok, wait_for_job

SPACE = effective_search_space(None, features=1)  # what insert_job gives its jobs
KEY_A = "importance-key-a-5b7e1c"
KEY_B = "importance-key-b-90d3fa"


def _random_hyperparameters(rng: random.Random) -> dict[str, Any]:
    """A point of the default search space (1 feature: units 1..4), as a trial stores it."""
    hps: dict[str, Any] = {"num_layers": rng.randint(1, 3)}
    for layer in range(hps["num_layers"]):
        hps[f"units_{layer}"] = rng.choice([1, 2, 4])
    hps.update(
        activation=rng.choice(["relu", "tanh"]),
        dropout=rng.choice([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        kernel_initializer=rng.choice(["glorot_uniform", "he_normal"]),
        optimizer=rng.choice(["adam", "rmsprop"]),
        learning_rate=10 ** rng.uniform(-4, -2),
        batch_size=rng.choice([32, 64, 128]),
        l2=0.0,
        batch_norm=False,
    )
    return hps


def _table(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` trials' hyperparameters: the learning rate spread evenly over its range and
    each dropout equally often (so that neither leans by chance), in random order; the
    rest random."""
    rng = random.Random(seed)
    rates = [10 ** (-4 + 2 * i / (count - 1)) for i in range(count)]
    dropouts = [[0.0, 0.1, 0.2, 0.3, 0.4, 0.5][i % 6] for i in range(count)]
    rng.shuffle(rates)
    rng.shuffle(dropouts)
    table = []
    for rate, dropout in zip(rates, dropouts, strict=True):
        table.append({**_random_hyperparameters(rng), "learning_rate": rate, "dropout": dropout})
    return table


def _loss(hps: dict[str, Any]) -> float:
    """Only the learning rate matters: the loss is its distance from 1e-3, in decades."""
    return abs(math.log10(hps["learning_rate"]) + 3)


def _decisive_trials(count: int, seed: int = 0) -> list[TrialRows]:
    return [
        TrialRows(trial_id=f"{i:02d}", hyperparameters=hps, score=_loss(hps))
        for i, hps in enumerate(_table(count, seed))
    ]


def _importance(api: httpx.Client, job_id: str) -> httpx.Response:
    return api.get(f"/api/v1/jobs/{job_id}/importance")


def test_the_decisive_hyperparameter_ranks_first(api: httpx.Client, engine: Engine) -> None:
    trials = _decisive_trials(40)
    # Trials that did not finish with a score are left out.
    trials.append(TrialRows(trial_id="40", hyperparameters={}, score=None, status="FAILED"))
    trials.append(TrialRows(trial_id="41", hyperparameters={"num_layers": 1}, score=None))
    job_id = insert_job(engine, trials, objective=("val_loss", "min"))

    response = _importance(api, job_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "ped_anova"
    assert body["trials"] == 40
    importances = body["importances"]
    assert math.isclose(sum(importances.values()), 1.0, rel_tol=1e-6)
    assert all(value >= 0 for value in importances.values())
    assert list(importances)[0] == "learning_rate"
    assert importances["learning_rate"] > 0.5, importances
    # Most important first; fixed hyperparameters (l2, batch_norm) cannot matter: absent.
    assert list(importances.values()) == sorted(importances.values(), reverse=True)
    assert {"num_layers", "units_0", "activation", "batch_size"} <= importances.keys()
    assert not {"l2", "batch_norm"} & importances.keys()


def test_the_direction_of_the_objective_is_honoured() -> None:
    # The highest scores need a learning rate above 10^-2.5, the lowest a dropout of 0.4 or
    # more: maximized, the learning rate matters most; minimized, the dropout.
    def score(hps: dict[str, Any]) -> float:
        high = max(0.0, math.log10(hps["learning_rate"]) + 2.5)
        return high - max(0.0, hps["dropout"] - 0.35)

    trials = [ScoredTrial(hps, score=score(hps)) for hps in _table(42)]
    highest = hyperparameter_importance(SPACE, trials, maximize=True).importances
    lowest = hyperparameter_importance(SPACE, trials, maximize=False).importances
    assert list(highest)[0] == "learning_rate", highest
    assert list(lowest)[0] == "dropout", lowest


def test_trials_outside_the_search_space_are_left_out() -> None:
    rng = random.Random(2)
    inside = [_random_hyperparameters(rng) for _ in range(6)]
    # A warm-start trial from a job with another space: its activation is not one of ours.
    outside = {**_random_hyperparameters(rng), "activation": "selu"}
    trials = [ScoredTrial(hps, score=_loss(hps)) for hps in [*inside, outside]]
    assert hyperparameter_importance(SPACE, trials, maximize=False).trials == 6
    with pytest.raises(ProblemError) as raised:
        hyperparameter_importance(SPACE, trials[:4] + [trials[-1]], maximize=False)
    assert raised.value.status == 409


def test_below_five_completed_trials_is_a_409(api: httpx.Client, engine: Engine) -> None:
    trials = _decisive_trials(4)
    trials.append(TrialRows(trial_id="04", hyperparameters={}, score=None, status="FAILED"))
    trials.append(TrialRows(trial_id="05", hyperparameters={}, score=None, status="RUNNING"))
    job_id = insert_job(engine, trials)
    assert_problem(_importance(api, job_id), 409, "at least 5 completed trials", "has 4")
    assert_problem(_importance(api, "no-such-job"), 404, "no-such-job")
    # The problems are in the OpenAPI document.
    operation = api.get("/openapi.json").json()["paths"]["/api/v1/jobs/{job_id}/importance"]["get"]
    assert operation["operationId"] == "read_importance"
    assert {"200", "404", "409"} <= operation["responses"].keys()


def test_another_keys_job_is_a_404(settings: Settings, engine: Engine) -> None:
    job_id = insert_job(engine, _decisive_trials(8))
    owner_a = hashlib.sha256(KEY_A.encode()).hexdigest()[:16]  # app.keys' owner id
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(owner=owner_a))
    keyed = settings.model_copy(update={"api_keys": f"{KEY_A},{KEY_B}"})
    with LiveServer(keyed) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        bearer_a = {"Authorization": f"Bearer {KEY_A}"}
        bearer_b = {"Authorization": f"Bearer {KEY_B}"}
        assert api.get(f"/api/v1/jobs/{job_id}/importance", headers=bearer_a).status_code == 200
        theirs = api.get(f"/api/v1/jobs/{job_id}/importance", headers=bearer_b)
        assert_problem(theirs, 404, job_id)


def test_cached_until_a_new_trial_completes(api: httpx.Client, engine: Engine) -> None:
    trials = _decisive_trials(20, seed=3)
    # Trial 20 is still running: it completes later in the test.
    trials.append(TrialRows(trial_id="20", hyperparameters={}, score=None, status="RUNNING"))
    job_id = insert_job(engine, trials)
    first = _importance(api, job_id).json()
    assert first["trials"] == 20
    assert list(first["importances"])[0] == "learning_rate"

    # Now only the dropout decides the scores, changed behind the API's back (a test's
    # doing: a trial's score is written once). No new trial: the cached answer stands.
    with write_session(engine) as session:
        for trial in session.query(Trial).filter(Trial.job_id == job_id, Trial.score.isnot(None)):
            trial.score = 1.0 if trial.hyperparameters["dropout"] <= 0.1 else 5.0
    assert _importance(api, job_id).json() == first

    # The running trial completes: the importances are computed again, from every trial.
    with write_session(engine) as session:
        running = session.query(Trial).filter(Trial.job_id == job_id, Trial.trial_id == "20").one()
        running.status = "COMPLETED"
        running.hyperparameters = {**_random_hyperparameters(random.Random(4)), "dropout": 0.0}
        running.score = 1.0
        running.finished_at = utcnow() + timedelta(seconds=1)
    second = _importance(api, job_id).json()
    assert second["trials"] == 21
    assert list(second["importances"])[0] == "dropout", second


@pytest.mark.slow
@sqlite_only  # the search writes its trials as on either backend; the reads are tested above
def test_a_real_search_reaches_the_endpoint(api: httpx.Client, start_worker) -> None:
    dataset = upload_ok(api, customers_frame(rows=80), "churned")
    job = submit(
        api,
        dataset["id"],
        # Hyperband (6 trials at max_epochs 3): any algorithm's trials will do.
        tuner={"algorithm": "hyperband", "max_epochs": 3, "min_epochs": 1, "factor": 3, "seed": 7},
        search_space={
            "num_layers": {"type": "int", "min": 1, "max": 2},
            "units": {"type": "pow2", "min": 4, "max": 8},
            "learning_rate": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
            "batch_size": {"type": "fixed", "value": 64},
        },
        training={"cross_validation": None},
        # Every trial of the schedule, however slow the machine: no time budget.
        max_runtime_s=None,
    )
    assert_problem(_importance(api, job["id"]), 409, "at least 5")  # queued: no trial yet
    start_worker()
    done = wait_for_job(api, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    response = _importance(api, job["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["trials"] == done["progress"]["trials_completed"] >= 5
    assert math.isclose(sum(body["importances"].values()), 1.0, rel_tol=1e-6)
    # Hyperband's bookkeeping (tuner/epochs, ...) and the fixed batch size are no hyperparameters.
    assert "learning_rate" in body["importances"]
    assert set(body["importances"]) <= {"num_layers", "units_0", "units_1", "learning_rate",
                                        "activation", "dropout", "kernel_initializer",
                                        "optimizer"}  # fmt: skip
