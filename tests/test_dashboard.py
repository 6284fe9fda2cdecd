"""The dashboard at `/`, driven in a real headless Chromium (Debian's, through Playwright)
against the live API, with real worker processes running real searches.

Screenshots of every page land in each test's tmp_path under `screenshots/`.
Chromium missing is a skip on a workstation and a failure in CI (.ci/run installs it and
sets TUNER_TEST_REQUIRE_CHROMIUM=1).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.search.overfitting import assess
from app.search.search_space import effective_search_space
from app.settings import Settings
from app.store.db import write_session
from app.store.models import Job, Trial, TrialEpoch, utcnow
from tests.conftest import LiveServer, sqlite_only
from tests.factories import assert_problem, customers_frame, dataset_row, trials_of, upload_ok

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

CHROMIUM = Path("/usr/bin/chromium")
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
KEY = "dashboard-key-0123456789"
# Waits on the page: generous, since the suite shares two cores with worker processes.
UI_TIMEOUT_MS = 30_000
SEARCH_TIMEOUT_MS = 240_000


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("TUNER_TEST_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"TUNER_TEST_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
def dashboard(browser: Any, live: LiveServer, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser profile (empty localStorage) and a way to open tabs on it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
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
        strays = [u for u in tab.requests if not u.startswith((live.url, "blob:", "data:"))]
        assert strays == [], strays


def row_ids(page: Any) -> list[str]:
    return page.locator("#trials-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.trialId)"
    )


def test_upload_search_watch_live_and_read_the_results(
    settings: Settings, start_worker, browser: Any, tmp_path: Path
) -> None:
    data = tmp_path / "customers.csv"
    customers_frame(rows=60).to_csv(data, index=False)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(browser, live, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        jobs_tab = open_tab()
        jobs = jobs_tab.page
        jobs.goto(live.url + "/")
        expect(jobs.locator(".empty")).to_contain_text("No jobs yet")

        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/#/new")
        page.set_input_files("#dataset-file", data)
        # The target is offered from the CSV's header (its last column by default).
        expect(page.locator("#dataset-target")).to_have_value("churned")
        page.click("#upload-dataset")
        summary = page.locator("#dataset-summary")
        expect(summary).to_be_visible()
        (dataset,) = api.get("/api/v1/datasets").json()["items"]
        expect(summary.locator("[data-summary=rows]")).to_have_text("60")
        expect(summary.locator("[data-summary=columns]")).to_contain_text("4 inputs")
        expect(summary.locator("[data-summary=columns]")).to_contain_text("income/yr")
        expect(summary.locator("[data-summary=task]")).to_have_text("classification: no, yes")
        expect(summary.locator("[data-summary=recommended-units]")).to_have_text(
            str(dataset["recommended_units"])
        )
        low, high = dataset["units_range"]
        expect(summary.locator("[data-summary=units-range]")).to_have_text(f"{low} – {high}")

        # The editor starts from the space the dataset seeds.
        units = page.locator("#space-editor tr[data-param=units]")
        expect(units.locator("[data-field=type]")).to_have_value("pow2")
        expect(units.locator("[data-field=min]")).to_have_value(str(low))
        expect(units.locator("[data-field=max]")).to_have_value(str(high))
        expect(page.locator("#space-editor tbody tr")).to_have_count(
            len(effective_search_space(None, features=dataset["features"]))
        )

        # A tiny search: random search, 3 trials of 2 epochs, one layer, a fixed batch size.
        page.select_option("#job-algorithm", "random_search")
        page.fill("#job-max-trials", "3")
        page.fill("#job-epochs", "2")
        page.locator("#space-editor tr[data-param=num_layers] [data-field=max]").fill("1")
        batch = page.locator("#space-editor tr[data-param=batch_size]")
        batch.locator("[data-field=type]").select_option("fixed")
        batch.locator("[data-field=value]").fill("32")
        tab.shot("new-job")
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        job_id = page.url.rsplit("/", 1)[1]

        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["spec"]["tuner"]["algorithm"] == "random_search"
        assert job["spec"]["tuner"]["max_trials"] == 3
        assert job["spec"]["training"]["epochs"] == 2
        assert job["spec"]["parallel_trials"] == 1  # the form's default: one trial at a time
        assert job["search_space"]["num_layers"]["max"] == 1
        assert job["search_space"]["batch_size"] == {"type": "fixed", "value": 32}
        assert job["search_space"]["units"] == {
            "type": "pow2",
            "min": low,
            "max": high,
            "default": dataset["recommended_units"],
        }

        # No worker yet: the job waits, with no trial.
        expect(page.locator("#job-status")).to_have_text("queued")
        expect(page.locator("#current-trial")).to_have_text("Waiting for a worker.")
        expect(page.locator("#trials-table tbody tr")).to_have_count(0)
        tab.shot("job-queued")

        # The pages were not reloaded: the trials and the new status arrive by themselves.
        start_worker()
        expect(page.locator("#trials-table tbody tr").first).to_be_visible(
            timeout=SEARCH_TIMEOUT_MS
        )
        tab.shot("job-first-trial")
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=SEARCH_TIMEOUT_MS)
        expect(page.locator("#trials-table tbody tr")).to_have_count(3)
        expect(page.locator("#job-progress")).to_contain_text("3 / 3")
        # Each row names the worker that ran it (host:pid).
        expect(page.locator("#trials-table tbody")).to_contain_text(_worker_of(api, job_id))
        expect(page.locator("#cancel-job")).to_be_hidden()
        row = jobs.locator(f"#jobs-table tr[data-job-id='{job_id}']")
        expect(row.locator(".job-status")).to_have_text("succeeded")
        expect(row.locator(".job-progress")).to_contain_text("3 / 3")

        trials = {t["trial_id"]: t for t in trials_of(api, job_id)}
        best = api.get(f"/api/v1/jobs/{job_id}/best").json()
        expect(page.locator("#best-trial-id")).to_have_text(best["trial_id"])
        expect(page.locator("#best-score")).to_have_text(f"{best['score']:.4f}")
        expect(row.locator(".job-best")).to_contain_text(f"{best['score']:.4f}")
        expect(page.locator(f"#trials-table tr[data-trial-id='{best['trial_id']}']")).to_have_class(
            re.compile(r"\bbest\b")
        )
        expect(page.locator("#best-hyperparameters")).to_contain_text("learning_rate")
        # Until a trial is picked, the curves are the best trial's.
        expect(page.locator("#curves-trial-id")).to_have_text(best["trial_id"])
        # One line per scored trial, against every hyperparameter that varied, then the score.
        expect(page.locator("#parcoords path.trial-line")).to_have_count(3)
        expect(page.locator("#score-chart canvas")).to_have_count(1)

        # Open another trial's curves.
        other = next(t for t in trials.values() if t["trial_id"] != best["trial_id"])
        page.click(f"#trials-table tbody tr[data-trial-id='{other['trial_id']}']")
        expect(page.locator("#curves-trial-id")).to_have_text(other["trial_id"])
        picked = page.locator(f"#trials-table tr[data-trial-id='{other['trial_id']}']")
        expect(picked).to_have_class(re.compile(r"\bselected\b"))
        expect(page.locator("#curves [data-marker=best-epoch]")).to_contain_text(
            f"best epoch {other['best_epoch']}"
        )
        # Hovering the last epoch shows that trial's recorded losses in the chart's legend.
        detail = api.get(f"/api/v1/jobs/{job_id}/trials/{other['trial_id']}").json()
        last = detail["metrics"][-1]
        over = page.locator("#curves .u-over")
        box = over.bounding_box()
        page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
        legend = page.locator("#curves .u-legend")
        expect(legend).to_contain_text(f"{last['loss']:.4f}")
        expect(legend).to_contain_text(f"{last['val_loss']:.4f}")
        tab.shot("job-succeeded")

        # Sorting by score puts the best first (val_accuracy is maximized).
        page.click("#trials-table th[data-sort=score] button")
        shown = [trials[i]["score"] for i in row_ids(page)]
        assert shown == sorted(shown, reverse=True)
        page.click("#trials-table th[data-sort='hp:learning_rate'] button")
        shown = [trials[i]["hyperparameters"]["learning_rate"] for i in row_ids(page)]
        assert shown == sorted(shown)

        # The downloads carry the real files.
        with page.expect_download() as model:
            page.click("#download-model")
        assert model.value.suggested_filename == f"{job_id}-best.keras"
        assert Path(model.value.path()).read_bytes()[:2] == b"PK"  # a .keras file is a zip
        with page.expect_download() as export:
            page.click("#download-csv")
        rows = list(csv.DictReader(io.StringIO(Path(export.value.path()).read_text())))
        assert sorted(r["trial_id"] for r in rows) == sorted(trials)

        jobs_tab.shot("jobs")


def _overfitting_job(engine: Engine) -> str:
    """A finished job whose trials show every flag: stopped early, overfitting, failed.

    Inserted as the recorder would write them (overfitting computed by app.search.overfitting),
    so the page can be checked against curves known in advance.
    """
    curves = {
        # val_loss bottoms out at epoch 2 and climbs while training loss falls: overfitting.
        "0": ([1.0, 0.7, 0.5, 0.35, 0.25, 0.18], [1.0, 0.8, 0.6, 0.7, 0.8, 0.9]),
        "1": ([1.0, 0.9, 0.85], [1.0, 0.92, 0.9]),
        "2": ([1.0, 0.95], [1.0, 0.99]),
    }
    hps = {
        "0": {"num_layers": 1, "units_0": 64, "learning_rate": 0.01},
        "1": {"num_layers": 2, "units_0": 8, "units_1": 16, "learning_rate": 0.0001},
        "2": {"num_layers": 1, "units_0": 32, "learning_rate": 0.001},
    }
    outcome = {
        "0": {"score": 0.9, "best_epoch": 2, "stopped_early": True, "duration_s": 9.0},
        "1": {"score": 0.6, "best_epoch": 2, "stopped_early": False, "duration_s": 2.0},
        "2": {"score": None, "best_epoch": None, "status": "FAILED", "duration_s": 4.0},
    }
    start = utcnow() - timedelta(minutes=5)
    with write_session(engine) as session:
        dataset = dataset_row("regression")
        session.add(dataset)
        session.flush()
        job = Job(
            dataset_id=dataset.id,
            status="succeeded",
            spec={
                "tuner": {"algorithm": "bayesian", "max_trials": 3},
                "objective": {"name": "val_loss", "direction": "min"},
                "training": {"epochs": 6},
                "callbacks": {"early_stopping": {"patience": 3}},
            },
            search_space=effective_search_space(None, features=1),
            trials_planned=3,
            created_at=start,
            started_at=start,
            finished_at=start + timedelta(seconds=15),
        )
        session.add(job)
        session.flush()
        for trial_id, (losses, val_losses) in curves.items():
            points = [
                (i, loss, val) for i, (loss, val) in enumerate(zip(losses, val_losses, strict=True))
            ]
            flags = assess(points, patience=3, best_epoch=outcome[trial_id]["best_epoch"])
            trial = Trial(
                job_id=job.id,
                trial_id=trial_id,
                status=outcome[trial_id].get("status", "COMPLETED"),
                hyperparameters=hps[trial_id],
                score=outcome[trial_id]["score"],
                best_epoch=outcome[trial_id]["best_epoch"],
                epochs_run=len(losses),
                stopped_early=outcome[trial_id].get("stopped_early", False),
                duration_s=outcome[trial_id]["duration_s"],
                overfit_epoch=flags.overfit_epoch,
                generalization_gap=flags.generalization_gap,
                started_at=start + timedelta(seconds=int(trial_id)),
                finished_at=start + timedelta(seconds=10),
            )
            session.add(trial)
            session.flush()
            for epoch, loss, val in points:
                session.add(
                    TrialEpoch(
                        trial_pk=trial.id,
                        epoch=epoch,
                        loss=loss,
                        val_loss=val,
                        learning_rate=0.001,
                        metrics={"loss": loss, "val_loss": val},
                    )
                )
    return job.id


def test_trial_table_flags_overfitting_and_sorts(
    settings: Settings, engine: Engine, browser: Any, tmp_path: Path
) -> None:
    job_id = _overfitting_job(engine)
    with LiveServer(settings) as live, dashboard(browser, live, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        expect(page.locator("#job-status")).to_have_text("succeeded")
        rows = page.locator("#trials-table tbody tr")
        expect(rows).to_have_count(3)
        overfit = page.locator("#trials-table tr[data-trial-id='0']")
        expect(overfit).to_have_class(re.compile(r"\boverfit\b"))
        expect(overfit).to_contain_text("from epoch 2")
        expect(overfit).to_contain_text("stopped early")
        clean = page.locator("#trials-table tr[data-trial-id='1']")
        expect(clean).not_to_have_class(re.compile(r"\boverfit\b|\bstopped-early\b"))
        expect(page.locator("#trials-table tr[data-trial-id='2']")).to_contain_text("FAILED")
        # val_loss is minimized: the best is the lowest score.
        expect(page.locator("#best-trial-id")).to_have_text("1")

        page.click("#trials-table tbody tr[data-trial-id='0']")
        expect(page.locator("#curves-trial-id")).to_have_text("0")
        expect(page.locator("#curves [data-marker=best-epoch]")).to_contain_text(
            "best epoch 2 (stopped early"
        )
        expect(page.locator("#curves [data-marker=overfit]")).to_contain_text(
            "overfitting from epoch 2"
        )
        tab.shot("job-overfitting")

        def sort_by(key: str) -> list[str]:
            page.click(f"#trials-table th[data-sort='{key}'] button")
            return row_ids(page)

        assert sort_by("score") == ["1", "0", "2"]  # ascending first for a minimized score
        assert sort_by("score") == ["0", "1", "2"]  # a missing score stays last either way
        assert sort_by("duration_s") == ["1", "2", "0"]
        assert sort_by("duration_s") == ["0", "2", "1"]
        assert sort_by("hp:learning_rate") == ["1", "2", "0"]
        assert sort_by("hp:units_1") == ["1", "0", "2"]  # absent (one layer) sorts last
        # The failed trial has no score, so it is not a line in the parallel coordinates.
        expect(page.locator("#parcoords path.trial-line")).to_have_count(2)
        # Score over trials: the failed trial is a gap, the best so far still plotted.
        expect(page.locator("#score-chart canvas")).to_have_count(1)


def test_with_api_keys_the_page_asks_once_and_keeps_the_key(
    settings: Settings, browser: Any, tmp_path: Path
) -> None:
    keyed = settings.model_copy(update={"api_keys": KEY})
    data = tmp_path / "customers.csv"
    customers_frame(rows=40).to_csv(data, index=False)
    with LiveServer(keyed) as live, dashboard(browser, live, tmp_path) as open_tab:
        from playwright.sync_api import expect

        # The page itself needs no key; the API does.
        assert httpx.get(live.url + "/").status_code == 200
        assert_problem(httpx.get(live.url + "/api/v1/jobs"), 401, "api key")

        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        tab.shot("key-prompt")
        # A wrong key is refused and asked for again; the right one is kept.
        page.fill("#key-input", "not-the-key")
        page.click("#key-form button[type=submit]")
        expect(page.locator("#key-message")).to_contain_text("refused")
        page.fill("#key-input", KEY)
        page.click("#key-form button[type=submit]")
        expect(dialog).to_be_hidden()
        expect(page.locator(".empty")).to_contain_text("No jobs yet")
        assert page.evaluate("localStorage.getItem('tuner-service.api-key')") == KEY

        # Upload, submit and cancel through the page; every call carries the key.
        page.click(".panel-head a.button")
        page.set_input_files("#dataset-file", data)
        page.click("#upload-dataset")
        expect(page.locator("#dataset-summary [data-summary=rows]")).to_have_text("40")
        expect(page.locator("#space-editor tr[data-param=units]")).to_be_visible()
        page.select_option("#job-algorithm", "random_search")
        page.fill("#job-max-trials", "2")
        page.fill("#job-parallel-trials", "2")
        # The server's 422 is shown, and the hyperparameter it names is marked.
        units_min = page.locator("#space-editor tr[data-param=units] [data-field=min]")
        seeded = units_min.input_value()
        units_min.fill("3")
        page.click("#submit-job")
        expect(page.locator("#job-form-error")).to_contain_text("not a power of two")
        expect(page.locator("#space-editor tr[data-param=units]")).to_have_class(
            re.compile(r"\binvalid\b")
        )
        tab.shot("keyed-invalid-space")
        units_min.fill(seeded)
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        expect(page.locator("#job-status")).to_have_text("queued")
        page.click("#cancel-job")
        expect(page.locator("#job-status")).to_have_text("cancelled")
        keyed_job = page.url.rsplit("/", 1)[1]
        spec = httpx.get(
            f"{live.url}/api/v1/jobs/{keyed_job}", headers={"Authorization": f"Bearer {KEY}"}
        ).json()["spec"]
        assert spec["parallel_trials"] == 2

        # A reload, and a new tab, use the stored key: no second prompt.
        page.reload()
        expect(page.locator("#job-status")).to_have_text("cancelled")
        expect(dialog).to_be_hidden()
        other = open_tab().page
        other.goto(live.url + "/")
        expect(other.locator("#jobs-table tbody tr")).to_have_count(1)
        expect(other.locator("#key-dialog")).to_be_hidden()
        tab.shot("keyed-job-cancelled")


def test_page_and_files_are_open_and_stay_out_of_the_api_schema(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": KEY})
    with LiveServer(keyed) as live, httpx.Client(base_url=live.url) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # The browser may load nothing from anywhere but this server.
        assert "default-src 'self'" in page.headers["content-security-policy"]
        scripts = re.findall(r'src="(/static/[^"]+)"', page.text)
        styles = re.findall(r'href="(/static/[^"]+)"', page.text)
        # Every file the page loads is one of ours (no CDN).
        assert not re.search(r'(src|href)="(https?:)?//', page.text)
        assert "/static/vendor/uPlot.iife.min.js" in scripts
        assert styles
        for path in [*scripts, *styles, "/static/js/main.js", "/static/vendor/uPlot.LICENSE"]:
            assert client.get(path).status_code == 200, path
        assert_problem(client.get("/static/no-such-file.js"), 404)
        paths = client.get("/openapi.json").json()["paths"]
        assert "/" not in paths
        assert not any(p.startswith("/static") for p in paths)


def test_dataset_search_space_is_the_default_a_job_would_get(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    response = api.get(f"/api/v1/datasets/{dataset['id']}/search_space")
    assert response.status_code == 200
    space = response.json()
    assert space == effective_search_space(None, features=dataset["features"])
    low, high = dataset["units_range"]
    assert space["units"] == {
        "type": "pow2",
        "min": low,
        "max": high,
        "default": dataset["recommended_units"],
    }
    # Sent back as is, it is exactly the space the job gets.
    job = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"], "search_space": space}).json()
    default_job = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]}).json()
    assert job["search_space"] == default_job["search_space"] == space
    assert_problem(api.get("/api/v1/datasets/nope/search_space"), 404, "nope")


def _worker_of(api: httpx.Client, job_id: str) -> str:
    """The worker of the job's trials as the table shows it: host:pid."""
    trials = api.get(f"/api/v1/jobs/{job_id}/trials").json()["items"]
    return ":".join(trials[0]["worker"].split(":")[:2])
