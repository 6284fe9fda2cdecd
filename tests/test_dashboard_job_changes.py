"""Naming and deleting a job from the dashboard, in a real headless Chromium against the
live API (PATCH and DELETE /api/v1/jobs/{id})."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.models import Job
from app.store.unit_of_work import write_session
from tests.browser import TrialRows, dashboard, insert_job
from tests.conftest import LiveServer, sqlite_only

pytestmark = sqlite_only  # the browser sees the same REST API on either backend


def test_a_named_job_is_shown_by_name_and_deleted_after_a_confirmation(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = insert_job(
        engine,
        [TrialRows("0", {"units_0": 8}, 0.5, curves={"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]})],
    )
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        assert api.patch(f"/api/v1/jobs/{job_id}", json={"name": "churn v2"}).status_code == 200
        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/")
        expect(page.locator("#jobs-table .job-name, td.job-name").first).to_have_text("churn v2")
        page.goto(f"{live.url}/#/jobs/{job_id}")
        expect(page.locator("#job-title")).to_have_text("churn v2")
        remove = page.locator("#delete-job")
        expect(remove).to_be_visible()  # the job has finished

        # "Keep it" keeps it.
        remove.click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("churn v2")
        tab.shot("delete-confirmation")
        page.click("#confirm-cancel")
        expect(dialog).to_be_hidden()
        assert api.get(f"/api/v1/jobs/{job_id}").status_code == 200

        remove.click()
        page.click("#confirm-ok")
        expect(page).to_have_url(f"{live.url}/#/")
        expect(page.locator("#toast")).to_contain_text("deleted")
        assert api.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_the_best_trial_shows_its_test_score_and_the_baselines_beside_it(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = insert_job(
        engine,
        [
            TrialRows(
                "0", {"units_0": 8}, 0.25, curves={"loss": [1.0, 0.5], "val_loss": [0.9, 0.25]}
            )
        ],
    )
    with write_session(engine) as session:  # what the search's end records
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                baselines={"linear": {"score": 0.3125}, "gradient_boosting": {"score": 0.2875}},
                test_metrics={"trial_id": "0", "score": 0.2625, "metric": "val_loss"},
            )
        )
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        beside = page.locator("#best-comparisons")
        expect(beside.locator("[data-score=test] dd")).to_have_text("0.2625")
        expect(beside.locator("[data-score=linear] dd")).to_have_text("0.3125")
        expect(beside.locator("[data-score=gradient_boosting] dd")).to_have_text("0.2875")
        tab.shot("best-with-baselines")
