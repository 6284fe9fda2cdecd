"""Lists longer than one page of the API, in a real headless Chromium against the live API:
every view that lists datasets or trials reads them to the end (501 datasets against pages of
500, 1001 trials against pages of 1000), and the job list names each job's dataset from the
job itself, with every dataset request refused.

Screenshots land in each test's tmp_path under `screenshots/`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.models import Dataset, Job, utcnow
from app.store.unit_of_work import write_session
from tests.browser import TrialRows, dashboard, insert_job
from tests.conftest import LiveServer, sqlite_only
from tests.factories import dataset_row

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

DATASET_PAGE = 500  # the largest page GET /datasets gives (the dashboard asks for it)
TRIAL_PAGE = 1000  # the largest page GET /jobs/{id}/trials gives


def test_datasets_past_the_first_page_are_listed_and_jobs_name_their_own(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # The oldest dataset is the last of the newest-first list: the only one on page two.
    now = utcnow()
    job_id = insert_job(engine, [], name="on the oldest", dataset_name="oldest.csv")
    with write_session(engine) as session:
        oldest = session.get(Job, job_id).dataset_id
        session.execute(
            update(Dataset).where(Dataset.id == oldest).values(created_at=now - timedelta(days=1))
        )
        for i in range(DATASET_PAGE):
            row = dataset_row()
            row.name = f"bulk {i:03}.csv"
            session.add(row)
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/datasets")
        expect(page.locator("#datasets-table tbody tr")).to_have_count(DATASET_PAGE + 1)
        expect(page.locator(f"#datasets-table tr[data-dataset-id='{oldest}']")).to_contain_text(
            "oldest.csv"
        )

        # The new-job form's picker and the job list's filter hold it too.
        page.goto(f"{live.url}/#/new")
        expect(page.locator(f"#existing-dataset option[value='{oldest}']")).to_have_count(1)
        page.goto(f"{live.url}/#/")
        expect(page.locator(f"#job-filter-dataset option[value='{oldest}']")).to_have_count(1)
        page.select_option("#job-filter-dataset", oldest)
        expect(page.locator("#jobs-table tbody tr")).to_have_count(1)

        # The list names the job's dataset without reading a single dataset.
        page.route("**/api/v1/datasets**", lambda route: route.abort())
        page.goto(f"{live.url}/#/?q=oldest.csv")
        row = page.locator(f"#jobs-table tr[data-job-id='{job_id}']")
        expect(row.locator(".job-dataset")).to_have_text("oldest.csv")
        tab.shot("jobs-named-without-datasets")


def test_a_job_with_more_trials_than_a_page_shows_them_all(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    count = TRIAL_PAGE + 1
    trials = [
        TrialRows(
            trial_id=str(i),
            hyperparameters={"num_layers": 1 + i % 3, "units_0": 8 << (i % 4)},
            score=1.0 / (1 + i),
        )
        for i in range(count)
    ]
    many = insert_job(engine, trials, name="many trials")
    few = insert_job(engine, trials[:2], name="two trials")
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{many}")
        expect(page.locator("#trials-table tbody tr")).to_have_count(count)
        # The last trial is the best (the lowest val_loss): it lies on the second page.
        last = page.locator(f"#trials-table tr[data-trial-id='{count - 1}']")
        expect(last).to_be_visible()

        page.goto(f"{live.url}/#/compare/{many},{few}")
        row = page.locator(f"#compare-table tr[data-job-id='{many}']")
        expect(row).to_be_visible()
        # The columns end "Trials", "Duration".
        assert row.locator("td").all_inner_texts()[-2] == str(count)
