"""The jobs list and the page itself, in a real headless Chromium against the live API: the
API-key prompt, the page's files and their policy, and comparing jobs side by side.

Screenshots of every page land in each test's tmp_path under `screenshots/`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine

from app.search.search_space import effective_search_space
from app.settings import Settings
from app.store.models import utcnow
from tests.browser import TrialRows, dashboard, hover, insert_job
from tests.conftest import LiveServer, sqlite_only
from tests.factories import assert_problem, customers_frame, upload_ok

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

KEY = "dashboard-key-0123456789"


def test_with_api_keys_the_page_asks_once_and_keeps_the_key(
    settings: Settings, tmp_path: Path
) -> None:
    keyed = settings.model_copy(update={"api_keys": KEY})
    data = tmp_path / "customers.csv"
    customers_frame(rows=40).to_csv(data, index=False)
    with LiveServer(keyed) as live, dashboard(live.url, tmp_path) as open_tab:
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
    # What a job with no overrides resolves to: the preview says the same.
    preview = api.post("/api/v1/jobs/preview", json={"dataset_id": dataset["id"]}).json()
    assert space == preview["search_space"]
    # 60 rows, 5 folds: 48 a fit, so batches of 32 would be under 4 steps an epoch.
    assert space["batch_size"]["values"] == [8]
    assert space == {
        **effective_search_space(None, features=dataset["features"]),
        "batch_size": space["batch_size"],
    }
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


def _scored_job(engine: Engine, scores: list[float], finished: list[float], **kw: object) -> str:
    trials = [
        TrialRows(
            trial_id=str(i),
            hyperparameters={"num_layers": 1, "learning_rate": 0.001 * (i + 1)},
            score=score,
            finished_after_s=after,
        )
        for i, (score, after) in enumerate(zip(scores, finished, strict=True))
    ]
    return insert_job(engine, trials, **kw)  # type: ignore[arg-type]


def test_ticked_jobs_are_compared_on_one_chart(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    now = utcnow()
    # val_loss, minimized: best so far A 0.9, 0.5, 0.5 and B 0.6, 0.6, 0.4.
    a = _scored_job(engine, [0.9, 0.5, 0.7], [10, 20, 30], created_at=now - timedelta(minutes=9))
    b = _scored_job(engine, [0.6, 0.8, 0.4], [5, 50, 60], created_at=now - timedelta(minutes=8))
    other = _scored_job(
        engine,
        [0.7, 0.8],
        [5, 10],
        objective=("val_accuracy", "max"),
        task="classification",
        created_at=now - timedelta(minutes=7),
    )
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/")
        expect(page.locator("#jobs-table tbody tr")).to_have_count(3)
        compare = page.locator("#compare-jobs")
        expect(compare).to_be_disabled()  # needs two
        page.check(f"#jobs-table tr[data-job-id='{a}'] input.pick-job")
        expect(compare).to_be_disabled()
        page.check(f"#jobs-table tr[data-job-id='{b}'] input.pick-job")
        # Ticking a job does not open it.
        assert "#/jobs/" not in page.url
        expect(compare).to_have_text("Compare (2)")
        # The ticks survive the list's refresh.
        page.wait_for_timeout(2500)
        expect(page.locator("#jobs-table input.pick-job:checked")).to_have_count(2)
        compare.click()
        page.wait_for_url(re.compile(r"#/compare/"))
        # In the list's order: newest first.
        assert page.url.endswith(f"#/compare/{b},{a}")

        rows = page.locator("#compare-table tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator(f"#compare-table tr[data-job-id='{a}'] .compare-best")).to_have_text(
            "0.5000"
        )
        expect(page.locator(f"#compare-table tr[data-job-id='{b}'] .compare-best")).to_have_text(
            "0.4000"
        )
        expect(page.locator("#compare-warning")).to_be_hidden()  # one objective

        # Over trials finished: each job's best so far after its first and its last trial.
        first, last = hover(page, "#compare-chart", 0), hover(page, "#compare-chart", 1)
        assert (first["trials finished"], first[a[:8]], first[b[:8]]) == ("1", "0.9000", "0.6000")
        assert (last["trials finished"], last[a[:8]], last[b[:8]]) == ("3", "0.5000", "0.4000")
        tab.shot("compare-trials")

        # Over time: B's first trial came first (5 s), A had finished all of its by 30 s.
        page.select_option("#compare-x", "time")
        first, last = hover(page, "#compare-chart", 0), hover(page, "#compare-chart", 1)
        assert (first[a[:8]], first[b[:8]]) == ("—", "0.6000")
        assert (last[a[:8]], last[b[:8]]) == ("—", "0.4000")
        tab.shot("compare-time")

        # Jobs with different objectives can be shown, with a warning that says so.
        page.goto(f"{live.url}/#/compare/{a},{other}")
        expect(page.locator("#compare-table tbody tr")).to_have_count(2)
        expect(page.locator("#compare-warning")).to_contain_text("different objectives")
        expect(page.locator("#compare-warning")).to_contain_text("val_accuracy (max)")
