"""What a newcomer met on the dashboard, in a real headless Chromium against the live API: a
crafted link that must not carry the key elsewhere, the job list's search, filters and
pages (and no dataset polling), a multi-objective job (pruned trials, per-trial models, the
model card's columns, its line in a comparison), and a search with several objectives that
is renamed and run again.

Screenshots land in each test's tmp_path under `screenshots/`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.models import Job, utcnow
from app.store.unit_of_work import write_session
from tests.browser import (
    FRONT,
    TrialRows,
    dashboard,
    hover,
    insert_job,
    multi_objective_job,
    write_stand_ins,
)
from tests.conftest import LiveServer, sqlite_only
from tests.factories import customers_frame, upload_ok

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

KEY = "front-door-key-0123456789"


def test_a_crafted_link_never_sends_the_key_to_another_path(
    settings: Settings, tmp_path: Path
) -> None:
    keyed = settings.model_copy(update={"api_keys": KEY})
    with LiveServer(keyed) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        keyed_requests: list[str] = []
        page.on(
            "request",
            lambda r: keyed_requests.append(r.url) if "authorization" in r.headers else None,
        )
        page.goto(live.url + "/")
        page.fill("#key-input", KEY)
        page.click("#key-form button[type=submit]")
        expect(page.locator(".empty")).to_contain_text("No jobs yet")

        # Ids a link can carry in its fragment: each would have walked up out of /api/v1/jobs/
        # (GET /metrics with the user's key, as the issue showed).
        for fragment in (
            "#/jobs/..%2F..%2Fmetrics%3F",
            "#/jobs/%2E%2E%2F%2E%2E%2Fmetrics",
            "#/jobs/..",
            "#/compare/..%2F..%2Fmetrics,..",
        ):
            page.goto(f"{live.url}/{fragment}")
            expect(page.locator("#toast")).to_be_visible()
            page.locator("#toast .toast-close").click()
        paths = [urlparse(url).path for url in keyed_requests]
        assert paths, "the key was never sent: the test saw nothing"
        assert [p for p in paths if not p.startswith("/api/v1/")] == []
        assert not any("metrics" in p and not p.startswith("/api/v1/jobs/") for p in paths)
        # The crafted id reached the API as one segment, and was a missing job there.
        assert "/api/v1/jobs/..%2F..%2Fmetrics%3F" in paths


def test_the_job_list_searches_filters_and_pages(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    now = utcnow()
    one = [TrialRows(trial_id="0", hyperparameters={"num_layers": 1}, score=0.5)]
    alpha = [
        insert_job(
            engine,
            one,
            name=f"alpha {i}",
            dataset_name="alpha.csv",
            created_at=now - timedelta(minutes=60 - i),
        )
        for i in range(51)
    ]
    beta = [
        insert_job(engine, one, name=n, dataset_name="beta.csv", created_at=now)
        for n in ("beta one", "beta two")
    ]
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == alpha[3]).values(status="failed"))
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/")
        rows = page.locator("#jobs-table tbody tr")
        # Fifty to a page, newest first: the two beta jobs, then alpha 50 down to alpha 3.
        expect(rows).to_have_count(50)
        expect(page.locator("#jobs-range")).to_have_text("1–50 of 53")
        expect(page.locator("#jobs-prev")).to_be_disabled()
        page.click("#jobs-next")
        expect(rows).to_have_count(3)
        expect(page.locator("#jobs-range")).to_have_text("51–53 of 53")
        assert rows.locator(".job-name").all_inner_texts() == ["alpha 2", "alpha 1", "alpha 0"]
        expect(page.locator("#jobs-next")).to_be_disabled()
        assert "page=2" in page.url

        # The list names each job's dataset, and polls no dataset list to do it.
        before = len([u for u in tab.requests if "/api/v1/datasets" in u])
        page.wait_for_timeout(4500)  # two refreshes
        assert len([u for u in tab.requests if "/api/v1/datasets" in u]) == before <= 1
        expect(rows.first.locator(".job-dataset")).to_have_text("alpha.csv")

        # A search by name, kept in the address (a reload keeps it).
        page.fill("#job-search", "beta")
        expect(rows).to_have_count(2)
        assert set(rows.locator(".job-name").all_inner_texts()) == {"beta one", "beta two"}
        assert "q=beta" in page.url
        assert "page=" not in page.url
        page.reload()
        expect(rows).to_have_count(2)
        expect(page.locator("#job-search")).to_have_value("beta")
        # ... by dataset name, and by the start of an id.
        page.fill("#job-search", "alpha.csv")
        expect(page.locator("#jobs-range")).to_have_text("1–50 of 51")
        page.fill("#job-search", alpha[7])
        expect(rows).to_have_count(1)
        page.fill("#job-search", "")
        expect(page.locator("#jobs-range")).to_have_text("1–50 of 53")

        # Filters: by status (the API's), by dataset (from the jobs' own).
        page.select_option("#job-filter-status", "failed")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".job-name")).to_have_text("alpha 3")
        page.select_option("#job-filter-status", "")
        beta_dataset = httpx.get(f"{live.url}/api/v1/jobs/{beta[1]}").json()["dataset_id"]
        page.select_option("#job-filter-dataset", beta_dataset)
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".job-name")).to_have_text("beta two")
        page.fill("#job-search", "nothing like it")
        expect(rows).to_have_count(0)
        expect(page.locator("#jobs-empty")).to_be_visible()
        expect(page.locator("#jobs-empty")).to_have_text("No job matches these filters.")
        tab.shot("jobs-filtered")


def test_a_multi_objective_job_its_pruned_trials_models_card_and_comparison(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = multi_objective_job(engine)
    write_stand_ins(settings, job_id)
    # The same scores, minimized: a job whose line must fall where the other's rises.
    single = insert_job(
        engine,
        [
            TrialRows(trial_id=str(i), hyperparameters={}, score=s)
            for i, s in enumerate((0.5, 0.3, 0.4))
        ],
        objective=("val_loss", "min"),
    )
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")

        # The pruned trial says so, in its own column; trial ids read as numbers.
        pruned = page.locator("#trials-table tr[data-trial-id='0003']")
        expect(pruned.locator(".flag-pruned")).to_have_text("pruned")
        expect(pruned).to_have_class(re.compile(r"\bpruned\b"))
        expect(pruned.locator("td.trial-id")).to_have_text("3")
        expect(page.locator("#trials-table .flag-pruned")).to_have_count(1)
        # So does the CSV the page downloads.
        table = httpx.get(f"{live.url}/api/v1/jobs/{job_id}/trials.csv").text
        by_id = {row["trial_id"]: row for row in csv.DictReader(io.StringIO(table))}
        assert {i for i, row in by_id.items() if row["pruned"] == "True"} == {"0003"}

        # A model download on each row whose trial kept one: the best and the front.
        buttons = page.locator("#trials-table .download-trial-model")
        expect(buttons).to_have_count(len(FRONT))
        kept = buttons.evaluate_all("bs => bs.map(b => b.closest('tr').dataset.trialId)")
        assert set(kept) == FRONT
        with page.expect_download() as got:
            page.locator("#trials-table tr[data-trial-id='0002'] .download-trial-model").click()
        assert Path(got.value.path()).read_bytes() == b"front trial model"
        assert got.value.suggested_filename == f"{job_id}-trial-0002.keras"

        # The model card's headers sit over their columns: numbers right, text left.
        card = page.locator("#model-card-columns")
        expect(card).to_be_visible()
        aligned = card.evaluate(
            """t => [...t.tHead.rows[0].cells].map((th, i) => [th.textContent,
                getComputedStyle(th).textAlign,
                getComputedStyle(t.tBodies[0].rows[0].cells[i]).textAlign])"""
        )
        for name, head, cell in aligned:
            assert head == cell, (name, head, cell)
        assert ("median", "right", "right") in [tuple(a) for a in aligned]
        tab.shot("job-multi-objective")

        # Compared, each job's line follows its own direction: the first objective (max)
        # rises, val_loss (min) falls; the table says what the multi-objective line is.
        page.goto(f"{live.url}/#/compare/{job_id},{single}")
        objective = page.locator(f"#compare-table tr[data-job-id='{job_id}'] .compare-objective")
        expect(objective).to_contain_text("val_accuracy (max), first of 2")
        # Over trials finished (1 to 6; the other job has 3): its first, third and last.
        first, third = hover(page, "#compare-chart", 0), hover(page, "#compare-chart", 0.4)
        last = hover(page, "#compare-chart", 1)
        assert third["trials finished"] == "3"
        mine = (first["churn two ways"], third["churn two ways"], last["churn two ways"])
        assert mine == ("0.7000", "0.8000", "0.9000")
        assert (first[single[:8]], third[single[:8]]) == ("0.5000", "0.3000")
        tab.shot("compare-multi-objective")


def test_several_objectives_then_rename_and_run_again(settings: Settings, tmp_path: Path) -> None:
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        dataset = upload_ok(api, customers_frame(rows=40), "churned")
        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/#/new")
        page.select_option("#existing-dataset", dataset["id"])
        page.locator("#space-editor tr[data-param=units]").wait_for()
        page.click("#advanced > summary")
        # One objective unless the algorithm keeps several apart.
        page.select_option("#job-algorithm", "random_search")
        expect(page.locator("#add-objective")).to_be_hidden()
        expect(page.locator("#objectives-hint")).to_contain_text("TPE or NSGA-II")
        page.select_option("#job-algorithm", "nsga2")
        page.click("#add-objective")
        page.click("#add-objective")
        extra = page.locator("#objectives .objective-row")
        expect(extra).to_have_count(2)
        # What the search measures per trial is offered, first.
        names = extra.first.locator(".objective-name option")
        assert names.evaluate_all("os => os.map(o => o.value)")[:2] == [
            "model_params",
            "predict_latency_ms",
        ]
        expect(extra.nth(1).locator(".objective-name")).to_have_value("predict_latency_ms")
        extra.nth(1).locator(".remove-objective").click()
        expect(extra).to_have_count(1)
        page.select_option("#job-objective", "val_accuracy")
        page.fill("#job-max-trials", "3")
        page.fill("#job-name", "two goals")
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        first_id = page.url.rsplit("/", 1)[1]
        job = api.get(f"/api/v1/jobs/{first_id}").json()
        assert job["spec"]["objective"] == [
            {"name": "val_accuracy", "direction": "max"},
            {"name": "model_params", "direction": "min"},
        ]
        expect(page.locator("#job-summary")).to_contain_text(
            "objectives val_accuracy (max), model_params (min)"
        )

        # Renamed in place.
        page.click("#rename-job")
        page.fill("#job-rename-input", "two goals, renamed")
        page.click("#job-rename-save")
        expect(page.locator("#job-title")).to_have_text("two goals, renamed")
        assert api.get(f"/api/v1/jobs/{first_id}").json()["name"] == "two goals, renamed"

        # Run again: the form, filled with this job's spec, to change and submit.
        page.click("#clone-job")
        page.wait_for_url(re.compile(r"#/new\?from="))
        expect(page.locator("#clone-note")).to_contain_text("two goals, renamed")
        expect(page.locator("#existing-dataset")).to_have_value(dataset["id"])
        expect(page.locator("#job-algorithm")).to_have_value("nsga2")
        expect(page.locator("#job-max-trials")).to_have_value("3")
        expect(page.locator("#job-name")).to_have_value("two goals, renamed")
        expect(page.locator("#job-seed")).to_have_value(str(job["spec"]["tuner"]["seed"]))
        expect(page.locator("#objectives .objective-name")).to_have_value("model_params")
        tab.shot("run-again")
        page.fill("#job-max-trials", "2")
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        again = api.get(f"/api/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
        assert again["id"] != first_id
        assert again["name"] == "two goals, renamed"
        assert again["spec"]["tuner"]["max_trials"] == 2
        for key in ("algorithm", "seed", "executions_per_trial"):
            assert again["spec"]["tuner"][key] == job["spec"]["tuner"][key], key
        for key in ("objective", "callbacks", "pruning"):
            assert again["spec"][key] == job["spec"][key], key
        assert again["search_space"] == job["search_space"]
