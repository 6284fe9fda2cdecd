"""Debian's headless Chromium, driven through Playwright, for the browser tests; the
dashboard tests' tabs, and the rows they write straight into the database.

Chromium missing is a skip on a workstation and a failure where TUNER_TEST_REQUIRE_CHROMIUM=1
(`make test` sets it when /usr/bin/chromium exists; `.ci/run` installs it).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from app.search.search_space import effective_search_space
from app.settings import Settings
from app.store.job_files import (
    MODEL_CARD_FILE,
    MODEL_CARD_MARKDOWN,
    best_model_path,
    job_dir,
    model_file_path,
    trial_model_path,
)
from app.store.models import Job, Trial, TrialEpoch, utcnow
from app.store.unit_of_work import write_session
from tests.factories import dataset_row

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Waits on the page: generous, since the suite shares two cores with worker processes.
UI_TIMEOUT_MS = 30_000


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Playwright browser (skips, or fails when required, without Chromium)."""
    if not CHROMIUM.exists():
        if os.environ.get("TUNER_TEST_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"TUNER_TEST_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class OfflinePage:
    """A page on which every request that does not go to `origin` is refused and recorded,
    as on a machine without internet access; script errors are recorded too."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.origin = origin
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(UI_TIMEOUT_MS)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith((self.origin, "data:", "blob:")):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("internetdisconnected")

    def close(self) -> None:
        self.context.close()


class Tab:
    """A page that records what a test must check afterwards: every URL it requested, and
    script errors (an uncaught exception in the dashboard fails the test)."""

    def __init__(self, context: Any, shots: Path) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(UI_TIMEOUT_MS)
        self.shots = shots
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=self.shots / f"{name}.png", full_page=True)


@contextmanager
def dashboard(origin: str, tmp_path: Path) -> Iterator[Callable[[], Tab]]:
    """A fresh browser profile (empty localStorage) on the dashboard at `origin`, and a way
    to open tabs on it. Screenshots land in tmp_path/screenshots. On the way out, every tab
    must have had no script error and made no request off this server."""
    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True
        )
        tabs: list[Tab] = []

        def open_tab() -> Tab:
            tab = Tab(context, tmp_path / "screenshots")
            tabs.append(tab)
            return tab

        try:
            yield open_tab
        finally:
            context.close()
    for tab in tabs:
        assert tab.errors == [], tab.errors
        # Nothing leaves the machine: every request went to this server (downloads are blobs).
        strays = [u for u in tab.requests if not u.startswith((origin, "blob:", "data:"))]
        assert strays == [], strays


def row_ids(page: Any) -> list[str]:
    """The trial ids of the trial table's rows, top to bottom."""
    return page.locator("#trials-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.trialId)"
    )


def hover(page: Any, chart: str, fraction: float) -> dict[str, str]:
    """Moves the pointer over a uPlot chart at `fraction` of its width (0: its first point,
    1: its last) and reads its legend there, as {series label: value shown}."""
    over = page.locator(f"{chart} .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    x = box["x"] + min(box["width"] - 2, max(1, fraction * box["width"]))
    page.mouse.move(x, box["y"] + box["height"] / 2)
    return page.locator(f"{chart} .u-legend .u-series").evaluate_all(
        """rows => Object.fromEntries(rows.map(r => [
            r.querySelector('.u-label').textContent, r.querySelector('.u-value').textContent]))"""
    )


# --- Rows the dashboard tests write straight into the database --------------------------
# As the recorder would write them, so a page can be checked against values known in
# advance without running a search.


@dataclass
class TrialRows:
    """One trial to insert: its outcome, and its curves as {metric: [value per epoch]}."""

    trial_id: str
    hyperparameters: dict[str, Any]
    score: float | None
    curves: dict[str, list[float]] = field(default_factory=dict)
    status: str = "COMPLETED"
    best_epoch: int | None = None
    stopped_early: bool = False
    duration_s: float = 1.0
    overfit_epoch: int | None = None
    generalization_gap: float | None = None
    finished_after_s: float | None = None  # since the job started; default: duration_s
    pruned: bool = False
    objectives: dict[str, float] | None = None  # a multi-objective job's values, by name


def insert_job(
    engine: Engine,
    trials: list[TrialRows],
    *,
    objective: tuple[str, str] | list[tuple[str, str]] = ("val_loss", "min"),
    algorithm: str = "bayesian",
    task: str = "regression",
    epochs: int = 6,
    created_at: datetime | None = None,
    name: str | None = None,
    dataset_name: str = "d",
) -> str:
    """A succeeded job with these trials (started one second apart); returns its id. A list
    of objectives makes it a multi-objective job (its trials' `objectives` then count)."""
    start = created_at or utcnow() - timedelta(minutes=5)
    objectives = [
        {"name": n, "direction": d}
        for n, d in (objective if isinstance(objective, list) else [objective])
    ]
    with write_session(engine) as session:
        dataset = dataset_row(task)
        dataset.name = dataset_name
        session.add(dataset)
        session.flush()
        job = Job(
            dataset_id=dataset.id,
            name=name,
            status="succeeded",
            spec={
                "tuner": {"algorithm": algorithm, "max_trials": len(trials)},
                "objective": objectives if isinstance(objective, list) else objectives[0],
                "training": {"epochs": epochs},
                "callbacks": {"early_stopping": {"patience": 3}},
            },
            search_space=effective_search_space(None, features=1),
            trials_planned=len(trials),
            created_at=start,
            started_at=start,
            finished_at=start + timedelta(seconds=sum(t.duration_s for t in trials) + 5),
        )
        session.add(job)
        session.flush()
        for i, rows in enumerate(trials):
            finished = (
                rows.finished_after_s if rows.finished_after_s is not None else rows.duration_s
            )
            trial = Trial(
                job_id=job.id,
                trial_id=rows.trial_id,
                status=rows.status,
                hyperparameters=rows.hyperparameters,
                score=rows.score,
                best_epoch=rows.best_epoch,
                epochs_run=len(rows.curves.get("loss", [])),
                stopped_early=rows.stopped_early,
                duration_s=rows.duration_s,
                overfit_epoch=rows.overfit_epoch,
                generalization_gap=rows.generalization_gap,
                pruned=rows.pruned,
                objectives=rows.objectives,
                started_at=start + timedelta(seconds=i),
                finished_at=start + timedelta(seconds=finished),
            )
            session.add(trial)
            session.flush()
            for epoch in range(len(rows.curves.get("loss", []))):
                values = {name: curve[epoch] for name, curve in rows.curves.items()}
                session.add(
                    TrialEpoch(
                        trial_pk=trial.id,
                        epoch=epoch,
                        loss=values.get("loss"),
                        val_loss=values.get("val_loss"),
                        learning_rate=values.get("learning_rate"),
                        metrics={k: v for k, v in values.items() if k != "learning_rate"},
                    )
                )
    return job.id


# --- A multi-objective job with the files a search leaves beside it ---------------------
# For the dashboard's and the CLI's tests of what a finished search leaves; the files are
# stand-ins the API serves as they are.

# Hyperband-style ids (KerasTuner pads them), shown as numbers. Trial 0003 was pruned.
# val_accuracy (max) against model_params (min): 0000, 0002 and 0004 are on the front.
MULTI_OBJECTIVE_TRIALS = {
    "0000": (0.70, 100.0),
    "0001": (0.65, 400.0),
    "0002": (0.80, 300.0),
    "0003": (0.60, 900.0),
    "0004": (0.90, 1000.0),
    "0005": (0.62, 800.0),
}
FRONT = {"0000", "0002", "0004"}
FILES = {"keras": b"keras model", "onnx": b"onnx model", "saved_model": b"saved model tarball"}
# The card's fields the dashboard reads (tuner_jobs.search.model_card writes them all).
MODEL_CARD: dict[str, Any] = {
    "trial_id": "0004",
    "dataset": {
        "name": "customers.csv",
        "rows": 10,
        "sha256": "0" * 64,
        "classes": ["a", "b"],
        "columns": [
            {"name": "age (years)", "kind": "numeric", "missing": 2, "serving_input": "float32"},
            {"name": "plan", "kind": "categorical", "missing": 0, "serving_input": "string"},
        ],
    },
    "preprocessing": {
        "numeric": [{"column": "age (years)", "median": 41.0, "mean": 40.2, "variance": 90.5}],
        "categorical": [{"column": "plan", "vocabulary_size": 3}],
    },
    "scores": {"objective": {"name": "val_accuracy"}, "validation": 0.9, "baselines": {}},
    "training": {"trial_duration_s": 12.5, "epochs_run": 3, "best_epoch": 2},
    "versions": {"tensorflow": "2.x", "keras": "3.x", "keras_tuner": "1.x"},
    "formats": {"keras": {}, "onnx": {"opset": 17}, "saved_model": {}},
}


def multi_objective_job(engine: Engine) -> str:
    rng = random.Random(0)
    trials = [
        TrialRows(
            trial_id=trial_id,
            hyperparameters={"num_layers": 1, "learning_rate": rng.uniform(1e-4, 1e-2)},
            score=accuracy,
            curves={"loss": [0.9, 0.7, 0.6], "val_loss": [0.95, 0.8, 0.7]},
            pruned=trial_id == "0003",
            objectives={"val_accuracy": accuracy, "model_params": params},
        )
        for trial_id, (accuracy, params) in MULTI_OBJECTIVE_TRIALS.items()
    ]
    return insert_job(
        engine,
        trials,
        objective=[("val_accuracy", "max"), ("model_params", "min")],
        algorithm="nsga2",
        task="classification",
        name="churn two ways",
        dataset_name="customers.csv",
    )


def write_stand_ins(settings: Settings, job_id: str) -> None:
    """What a search writes beside a job: its model in each format, its card, and the
    model of one front trial."""
    for model_format, content in FILES.items():
        path = model_file_path(settings, job_id, model_format)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    best = best_model_path(settings, job_id)
    best.parent.mkdir(parents=True, exist_ok=True)
    if not best.exists():
        best.write_bytes(FILES["keras"])
    (job_dir(settings, job_id) / MODEL_CARD_FILE).write_text(json.dumps(MODEL_CARD))
    (job_dir(settings, job_id) / MODEL_CARD_MARKDOWN).write_text("# Model card\n\ntrial 4\n")
    front = trial_model_path(settings, job_id, "0002")
    front.parent.mkdir(parents=True, exist_ok=True)
    front.write_bytes(b"front trial model")
