"""The job page's insights, in a real headless Chromium against the live API, on jobs whose
rows are written straight into the database: the hyperparameter importance chart (and its
reason when the API has too few trials), and a multi-objective job's Pareto front, whose
points open their trial.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.models import Job, Trial
from app.store.unit_of_work import write_session
from tests.browser import TrialRows, dashboard, insert_job
from tests.conftest import LiveServer, sqlite_only

pytestmark = sqlite_only  # the browser sees the same REST API on either backend


def _hyperparameters(rng: random.Random, learning_rate: float) -> dict[str, Any]:
    """A point of the default search space of a one-feature dataset (insert_job's)."""
    return {
        "num_layers": 1,
        "units_0": rng.choice([1, 2, 4]),
        "activation": rng.choice(["relu", "tanh"]),
        "dropout": rng.choice([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        "kernel_initializer": rng.choice(["glorot_uniform", "he_normal"]),
        "optimizer": rng.choice(["adam", "rmsprop"]),
        "learning_rate": learning_rate,
        "batch_size": rng.choice([32, 64, 128]),
        "l2": 0.0,
        "batch_norm": False,
    }


def _learning_rate_job(engine: Engine, count: int) -> str:
    """A job of `count` completed trials whose loss only the learning rate decides."""
    rng = random.Random(0)
    rates = [10 ** (-4 + 2 * i / max(1, count - 1)) for i in range(count)]
    rng.shuffle(rates)
    trials = []
    for i, rate in enumerate(rates):
        hps = _hyperparameters(rng, rate)
        loss = abs(math.log10(rate) + 3)
        trials.append(TrialRows(trial_id=f"{i:02d}", hyperparameters=hps, score=loss))
    return insert_job(engine, trials, objective=("val_loss", "min"))


def test_importance_chart_shows_the_api_s_importances(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    enough = _learning_rate_job(engine, 30)
    too_few = _learning_rate_job(engine, 3)
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        expected = httpx.get(f"{live.url}/api/v1/jobs/{enough}/importance").json()
        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{enough}")
        chart = page.locator("#importance-chart")
        expect(chart).to_be_visible()
        rows = chart.locator(".importance-row")
        expect(rows).to_have_count(len(expected["importances"]))
        shown = rows.evaluate_all(
            """rows => rows.map(r => [r.dataset.name, Number(r.dataset.value),
                r.querySelector('.importance-value').textContent,
                r.querySelector('.importance-bar').getBoundingClientRect().width])"""
        )
        # The bars are the API's, in its order (most important first: the learning rate).
        assert [name for name, *_ in shown] == list(expected["importances"])
        assert shown[0][0] == "learning_rate"
        for (name, value, label, _), want in zip(
            shown, expected["importances"].values(), strict=True
        ):
            assert math.isclose(value, want, rel_tol=1e-9), name
            assert label == f"{100 * want:.1f}%"
        widths = [width for *_, width in shown]
        assert widths == sorted(widths, reverse=True)
        assert widths[0] > widths[-1]
        expect(page.locator("#importance-note")).to_contain_text("30 completed trials")
        expect(page.locator("#importance-reason")).to_be_hidden()
        tab.shot("job-importance")

        page.goto(f"{live.url}/#/jobs/{too_few}")
        expect(page.locator("#job-status")).to_have_text("succeeded")
        reason = page.locator("#importance-reason")
        expect(reason).to_contain_text("Not enough trials yet")
        expect(reason).to_contain_text("at least 5 completed trials")
        expect(reason).to_contain_text("has 3")
        expect(page.locator("#importance-chart")).to_be_hidden()
        # A single-objective job has no Pareto front on its page.
        expect(page.locator("#pareto-panel")).to_be_hidden()


# (val_accuracy, model_params) per trial: max accuracy, min parameters. The front is
# 00, 02, 04 and 05; 01 and 03 are dominated (by 02 and by 04), 06 failed.
OBJECTIVES = {
    "00": (0.70, 100.0),
    "01": (0.72, 900.0),
    "02": (0.80, 400.0),
    "03": (0.75, 5000.0),
    "04": (0.90, 1000.0),
    "05": (0.60, 20.0),
}
FRONT = {"00", "02", "04", "05"}


def _two_objective_job(engine: Engine) -> str:
    rng = random.Random(1)
    trials = [
        TrialRows(
            trial_id=trial_id,
            hyperparameters=_hyperparameters(rng, 1e-3),
            score=accuracy,
            curves={"loss": [0.9, 0.7], "val_loss": [0.95, 0.8]},
        )
        for trial_id, (accuracy, _) in OBJECTIVES.items()
    ]
    trials.append(TrialRows(trial_id="06", hyperparameters={}, score=None, status="FAILED"))
    job_id = insert_job(
        engine, trials, objective=("val_accuracy", "max"), algorithm="nsga2", task="classification"
    )
    with write_session(engine) as session:
        job = session.get(Job, job_id)
        spec = dict(job.spec)
        spec["objective"] = [
            {"name": "val_accuracy", "direction": "max"},
            {"name": "model_params", "direction": "min"},
        ]
        session.execute(update(Job).where(Job.id == job_id).values(spec=spec))
        for trial_id, (accuracy, params) in OBJECTIVES.items():
            session.execute(
                update(Trial)
                .where(Trial.job_id == job_id, Trial.trial_id == trial_id)
                .values(objectives={"val_accuracy": accuracy, "model_params": params})
            )
    return job_id


def test_pareto_front_is_drawn_and_a_point_opens_its_trial(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = _two_objective_job(engine)
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        front = httpx.get(f"{live.url}/api/v1/jobs/{job_id}/pareto").json()
        assert {item["trial_id"] for item in front["items"]} == FRONT
        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        panel = page.locator("#pareto-panel")
        expect(panel).to_be_visible()
        points = panel.locator("circle.trial-point")
        expect(points).to_have_count(len(OBJECTIVES))  # the failed trial has no objectives
        on_front = panel.locator("circle.trial-point.front")
        expect(on_front).to_have_count(len(FRONT))
        assert set(on_front.evaluate_all("cs => cs.map(c => c.dataset.trialId)")) == FRONT
        expect(panel.locator("path.front-line")).to_have_count(1)
        expect(panel.locator("[data-axis=x]")).to_have_text("val_accuracy (max)")
        expect(panel.locator("[data-axis=y]")).to_have_text("model_params (min, log scale)")
        expect(page.locator("#pareto-note")).to_contain_text("4 trial(s) on the front")
        # Placed by their values: higher accuracy further right, more parameters higher up.
        place = points.evaluate_all(
            "cs => Object.fromEntries(cs.map(c => [c.dataset.trialId, [+c.getAttribute('cx'), "
            "+c.getAttribute('cy')]]))"
        )
        assert place["05"][0] < place["00"][0] < place["02"][0] < place["04"][0]
        assert place["03"][1] < place["04"][1] < place["02"][1] < place["00"][1]
        expect(page.locator("#job-summary")).to_contain_text(
            "objectives val_accuracy (max), model_params (min)"
        )
        tab.shot("job-pareto")

        # A click on a dominated point opens that trial, as a row of the trial table does.
        panel.locator("circle.trial-point[data-trial-id='03']").click()
        expect(page.locator("#curves-trial-id")).to_have_text("3")
        expect(page.locator("#trials-table tr[data-trial-id='03']")).to_have_class(
            re.compile(r"\bselected\b")
        )
        expect(panel.locator("circle.trial-point.selected")).to_have_attribute(
            "data-trial-id", "03"
        )
        panel.locator("circle.trial-point[data-trial-id='02']").click()
        expect(page.locator("#curves-trial-id")).to_have_text("2")
