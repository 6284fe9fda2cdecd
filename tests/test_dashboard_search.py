"""The dashboard's whole path, driven in a real headless Chromium (Debian's, through
Playwright) against the live API, with real worker processes running real tiny searches:
upload, submit, watch it run, read the results, download, predict.

Screenshots of every page land in each test's tmp_path under `screenshots/`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest

from app.search.search_space import effective_search_space
from app.settings import Settings
from tests.browser import dashboard, row_ids
from tests.conftest import LiveServer, sqlite_only
from tests.factories import (
    customers_frame,
    regression_frame,
    submit,
    trials_of,
    upload_ok,
    wait_for_job,
)

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

SEARCH_TIMEOUT_MS = 240_000


@pytest.mark.slow
def test_upload_search_watch_live_and_read_the_results(
    settings: Settings, start_worker, tmp_path: Path
) -> None:
    data = tmp_path / "customers.csv"
    customers_frame(rows=60).to_csv(data, index=False)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
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
        assert job["spec"]["parallel_trials"] == "auto"  # the form's default: every idle worker
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
        expect(page.locator("#best-trial-id")).to_have_attribute("data-trial-id", best["trial_id"])
        expect(page.locator("#best-score")).to_have_text(f"{best['score']:.4f}")
        expect(row.locator(".job-best")).to_contain_text(f"{best['score']:.4f}")
        expect(page.locator(f"#trials-table tr[data-trial-id='{best['trial_id']}']")).to_have_class(
            re.compile(r"\bbest\b")
        )
        expect(page.locator("#best-hyperparameters")).to_contain_text("learning_rate")
        # Until a trial is picked, the curves are the best trial's.
        expect(page.locator("#curves-trial-id")).to_have_attribute(
            "data-trial-id", best["trial_id"]
        )
        # One line per scored trial, against every hyperparameter that varied, then the score.
        expect(page.locator("#parcoords path.trial-line")).to_have_count(3)
        expect(page.locator("#score-chart canvas")).to_have_count(1)

        # Open another trial's curves.
        other = next(t for t in trials.values() if t["trial_id"] != best["trial_id"])
        page.click(f"#trials-table tbody tr[data-trial-id='{other['trial_id']}']")
        expect(page.locator("#curves-trial-id")).to_have_attribute(
            "data-trial-id", other["trial_id"]
        )
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


TINY = {
    "tuner": {"algorithm": "random_search", "max_trials": 1},
    "training": {"epochs": 2},
    "search_space": {"num_layers": {"type": "fixed", "value": 1}},
}


@pytest.mark.slow
def test_predict_form_answers_as_the_api_does(
    settings: Settings, start_worker, tmp_path: Path
) -> None:
    frame = customers_frame(rows=60)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=60) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        classifier = upload_ok(api, frame, "churned")
        regressor = upload_ok(api, regression_frame(rows=60), "target value")
        jobs = {
            "classification": submit(api, classifier["id"], **TINY)["id"],
            "regression": submit(api, regressor["id"], **TINY)["id"],
        }
        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{jobs['classification']}")
        expect(page.locator("#job-status")).to_have_text("queued")
        # Predictions need a succeeded job: no form before.
        expect(page.locator("#predict-panel")).to_be_hidden()
        start_worker()
        for job_id in jobs.values():
            assert wait_for_job(api, job_id)["status"] == "succeeded"
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=SEARCH_TIMEOUT_MS)

        # One field per input column, in the dataset's order, typed by its profiled kind.
        form = page.locator("#predict-form")
        fields = form.locator("[data-column]")
        expect(fields).to_have_count(len(classifier["input_columns"]))
        assert (
            fields.evaluate_all("xs => xs.map(x => x.dataset.column)")
            == classifier["input_columns"]
        )
        kinds = {c["name"]: c["kind"] for c in classifier["columns"]}
        for name in classifier["input_columns"]:
            expected = "number" if kinds[name] == "numeric" else "text"
            expect(form.locator(f"[data-column='{name}']")).to_have_attribute("type", expected)

        row = {"age (years)": 35, "income/yr": 61000.5, "home city": "Porto", "plan": "pro"}
        for name, value in row.items():
            form.locator(f"[data-column='{name}']").fill(str(value))
        page.click("#predict-submit")
        (want,) = api.post(
            f"/api/v1/jobs/{jobs['classification']}/predict", json={"rows": [row]}
        ).json()["predictions"]
        expect(page.locator("#predict-label")).to_have_text(want["label"])
        for label, probability in want["probabilities"].items():
            cell = page.locator(f"#predict-probabilities tr[data-class='{label}'] td.num")
            expect(cell).to_have_text(f"{probability:.4f}")
        tab.shot("predict-classification")

        # An empty field is a missing value, as null is for the API.
        form.locator("[data-column='age (years)']").fill("")
        form.locator("[data-column='home city']").fill("")
        page.click("#predict-submit")
        (want,) = api.post(
            f"/api/v1/jobs/{jobs['classification']}/predict",
            json={"rows": [{**row, "age (years)": None, "home city": None}]},
        ).json()["predictions"]
        for label, probability in want["probabilities"].items():
            cell = page.locator(f"#predict-probabilities tr[data-class='{label}'] td.num")
            expect(cell).to_have_text(f"{probability:.4f}")

        # A regression job answers with a value.
        page.goto(f"{live.url}/#/jobs/{jobs['regression']}")
        form = page.locator("#predict-form")
        expect(form.locator("[data-column]")).to_have_count(len(regressor["input_columns"]))
        numbers = {name: 0.25 * (i + 1) for i, name in enumerate(regressor["input_columns"])}
        for name, value in numbers.items():
            form.locator(f"[data-column='{name}']").fill(str(value))
        page.click("#predict-submit")
        (want,) = api.post(
            f"/api/v1/jobs/{jobs['regression']}/predict", json={"rows": [numbers]}
        ).json()["predictions"]
        expect(page.locator("#predict-value")).to_have_text(f"{want['value']:.4f}")
        expect(page.locator("#predict-label")).to_have_count(0)
        tab.shot("predict-regression")


def _worker_of(api: httpx.Client, job_id: str) -> str:
    """The worker of the job's trials as the table shows it: host:pid."""
    trials = api.get(f"/api/v1/jobs/{job_id}/trials").json()["items"]
    return ":".join(trials[0]["worker"].split(":")[:2])
