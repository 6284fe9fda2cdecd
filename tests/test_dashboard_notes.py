"""A job's notes on its page, and the job list's search through the server (GET /jobs?q=),
in a real headless Chromium against the live API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine

from app.settings import Settings
from app.store.models import utcnow
from tests.browser import TrialRows, dashboard, insert_job
from tests.conftest import LiveServer, sqlite_only

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

NOTES = 'Wider first layer <b>bold?</b> <img src="x" id="injected">\nnext: try tpe'


def test_notes_are_saved_shown_as_text_kept_after_reload_and_found_by_the_list(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    one = [TrialRows(trial_id="0", hyperparameters={"units_0": 8}, score=0.5)]
    now = utcnow()
    noted = insert_job(engine, one, name="noted run", created_at=now - timedelta(minutes=2))
    insert_job(engine, one, name="other run", created_at=now)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{noted}")
        expect(page.locator("#job-title")).to_have_text("noted run")
        shown = page.locator("#job-notes-text")
        expect(shown).to_be_hidden()  # no notes yet
        page.click("#edit-notes")
        page.fill("#job-notes-input", NOTES)
        page.click("#job-notes-save")
        expect(page.locator("#job-notes-form")).to_be_hidden()
        expect(shown).to_have_text(NOTES)  # the markup as typed, line break included
        assert api.get(f"/api/v1/jobs/{noted}").json()["notes"] == NOTES  # a finished job's

        page.reload()
        expect(shown).to_have_text(NOTES)
        expect(page.locator("#edit-notes")).to_have_text("Edit notes")
        assert shown.locator("b, img").count() == 0
        assert page.locator("#injected").count() == 0
        tab.shot("job-notes")

        # Editing starts from the saved text; keeping it changes nothing.
        page.click("#edit-notes")
        expect(page.locator("#job-notes-input")).to_have_value(NOTES)
        page.fill("#job-notes-input", "not saved")
        page.click("#job-notes-form button:has-text('Keep')")
        expect(shown).to_have_text(NOTES)

        # The list's search finds the job by a word of its notes, through the server.
        page.goto(f"{live.url}/#/")
        rows = page.locator("#jobs-table tbody tr")
        expect(rows).to_have_count(2)
        page.fill("#job-search", "TPE")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".job-name")).to_have_text("noted run")
        expect(page.locator("#jobs-count")).to_have_text("(1 shown)")
        lists = [u for u in tab.requests if "/api/v1/jobs?" in u]
        assert any("q=TPE" in u and "limit=50" in u for u in lists), lists
        assert not any("limit=500" in u for u in lists), lists  # never every job
