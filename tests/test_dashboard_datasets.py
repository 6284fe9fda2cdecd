"""The datasets page, in a real headless Chromium against the live API: every dataset listed,
a delete that asks first and that the API refuses while a job uses the dataset, and links to
the dataset's jobs and to a new job on it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from app.settings import Settings
from tests.browser import dashboard
from tests.conftest import LiveServer, sqlite_only
from tests.factories import csv_bytes, customers_frame

pytestmark = sqlite_only  # the browser sees the same REST API on either backend


def test_datasets_are_listed_deleted_and_lead_to_their_jobs(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        def upload(name: str, rows: int) -> dict:
            data = csv_bytes(customers_frame(rows=rows, seed=rows))
            answer = api.post(
                "/api/v1/datasets", files={"file": (name, data)}, data={"target": "churned"}
            )
            assert answer.status_code == 201, answer.text
            return answer.json()

        used = upload("used.csv", 40)
        unused = upload("spare.csv", 30)
        job = api.post("/api/v1/jobs", json={"dataset_id": used["id"], "name": "on used"}).json()

        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/")
        page.click("nav a[data-nav=datasets]")
        page.wait_for_url(re.compile(r"#/datasets$"))
        rows = page.locator("#datasets-table tbody tr")
        expect(rows).to_have_count(2)
        spare = page.locator(f"#datasets-table tr[data-dataset-id='{unused['id']}']")
        expect(spare.locator(".dataset-name")).to_have_text("spare.csv")
        expect(spare).to_contain_text("30")
        tab.shot("datasets")

        # A delete asks first; "Keep it" keeps it.
        spare.locator(".delete-dataset").click()
        expect(page.locator("#confirm-title")).to_have_text("Delete dataset spare.csv?")
        page.click("#confirm-cancel")
        expect(rows).to_have_count(2)
        spare.locator(".delete-dataset").click()
        page.click("#confirm-ok")
        expect(rows).to_have_count(1)
        assert api.get(f"/api/v1/datasets/{unused['id']}").status_code == 404

        # A dataset a job uses: the API's 409, in its own words; the dataset stays.
        in_use = page.locator(f"#datasets-table tr[data-dataset-id='{used['id']}']")
        in_use.locator(".delete-dataset").click()
        page.click("#confirm-ok")
        expect(page.locator("#toast")).to_contain_text("used by 1 job(s)")
        expect(rows).to_have_count(1)
        assert api.get(f"/api/v1/datasets/{used['id']}").status_code == 200

        # Its jobs: the job list, filtered to this dataset.
        in_use.get_by_role("link", name="Jobs").click()
        page.wait_for_url(re.compile(rf"#/\?dataset={used['id']}$"))
        expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
        expect(page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")).to_be_visible()
        expect(page.locator("#job-filter-dataset")).to_have_value(used["id"])

        # A new job on it: the form opens with the dataset chosen and profiled.
        page.goto(f"{live.url}/#/datasets")
        in_use.get_by_role("link", name="New job").click()
        expect(page.locator("#existing-dataset")).to_have_value(used["id"])
        expect(page.locator("#dataset-summary [data-summary=name]")).to_have_text("used.csv")
        expect(page.locator("#space-editor tr[data-param=units]")).to_be_visible()
