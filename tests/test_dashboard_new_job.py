"""The new-job page, in a real headless Chromium against the live API: every spec field the
API takes, the server's errors read plainly and marking their field, datasets told apart
in the dropdown, and an error toast that goes by itself and never hides a control.

Screenshots of every page land in each test's tmp_path under `screenshots/`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings
from tests.browser import dashboard
from tests.conftest import LiveServer, sqlite_only
from tests.factories import csv_bytes, customers_frame, upload, upload_ok

pytestmark = sqlite_only  # the browser sees the same REST API on either backend


def _choose(page: Any, dataset_id: str) -> None:
    page.select_option("#existing-dataset", dataset_id)
    page.locator("#space-editor tr[data-param=units]").wait_for()


def test_every_spec_field_reaches_the_job_and_errors_read_plainly(
    settings: Settings, tmp_path: Path
) -> None:
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
        _choose(page, dataset["id"])

        # A search-space error in the server's words, without pydantic's "Value error, ".
        units_min = page.locator("#space-editor tr[data-param=units] [data-field=min]")
        seeded = units_min.input_value()
        units_min.fill("3")
        page.click("#submit-job")
        error = page.locator("#job-form-error")
        expect(error).to_contain_text("min=3 is not a power of two")
        expect(error).not_to_contain_text("Value error")
        units = page.locator("#space-editor tr[data-param=units]")
        expect(units).to_have_class(re.compile(r"\binvalid\b"))
        assert "Value error" not in (units.get_attribute("title") or "")
        units_min.fill(seeded)

        # The advanced section: closed at first, its metric lists follow the task.
        advanced = page.locator("#advanced")
        expect(page.locator("#job-seed")).to_be_hidden()
        page.click("#advanced > summary")
        objectives = page.locator("#job-objective option")
        assert objectives.evaluate_all("os => os.map(o => o.value)") == [
            "",
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
        ]
        expect(page.locator("#rlr-factor")).to_be_disabled()  # off until ticked

        page.fill("#job-max-trials", "4")
        page.fill("#job-epochs", "3")
        # "Automatic" at first: the server picks (Hyperband; TPE under a time budget).
        expect(page.locator("#job-algorithm")).to_have_value("")
        expect(page.locator("#hyperband-fields")).to_be_hidden()
        page.select_option("#job-algorithm", "hyperband")
        page.fill("#job-max-epochs", "3")
        page.fill("#job-hyperband-iterations", "2")
        page.fill("#job-parallel-trials", "2")
        page.select_option("#job-objective", "val_loss")
        page.select_option("#job-direction", "min")
        page.fill("#job-seed", "7")
        page.fill("#job-executions", "2")
        page.fill("#job-max-runtime", "600")
        page.select_option("#es-monitor", "val_accuracy")
        page.fill("#job-patience", "2")
        page.fill("#es-min-delta", "0.01")
        page.uncheck("#es-restore")
        page.check("#rlr-enabled")
        page.select_option("#rlr-monitor", "loss")
        page.fill("#rlr-factor", "0.5")
        page.fill("#rlr-patience", "1")
        page.fill("#rlr-min-lr", "0.00001")
        page.fill("#rlr-min-delta", "0.001")
        page.check("#job-tensorboard")
        # Out of range: the server's 422 marks the field it names.
        page.fill("#job-validation-split", "1.5")
        page.click("#submit-job")
        expect(error).to_contain_text("validation_split")
        expect(page.locator("#job-validation-split")).to_have_class(re.compile(r"\binvalid\b"))
        expect(units).not_to_have_class(re.compile(r"\binvalid\b"))
        tab.shot("new-job-advanced-invalid")
        page.fill("#job-validation-split", "0.3")
        page.fill("#job-test-split", "0.1")
        page.select_option("#job-cross-validation", "3")
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        # The job's page says the budget: under one, the planned trials are only a cap.
        expect(page.locator("#job-budget-text")).to_have_text("Time budget 10 min (yours).")
        job = api.get(f"/api/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
        spec = job["spec"]
        tuner = spec["tuner"]
        assert (tuner["algorithm"], tuner["max_trials"], tuner["max_epochs"]) == ("hyperband", 4, 3)
        assert (tuner["hyperband_iterations"], tuner["seed"], tuner["executions_per_trial"]) == (
            2,
            7,
            2,
        )
        assert spec["objective"] == {"name": "val_loss", "direction": "min"}
        # The fields the form sent (the resolved spec adds its defaults beside them).
        sent = ("epochs", "validation_split", "test_split", "cross_validation")
        assert {key: spec["training"][key] for key in sent} == {
            "epochs": 3,
            "validation_split": 0.3,
            "test_split": 0.1,
            "cross_validation": {"folds": 3},
        }
        assert spec["max_runtime_s"] == 600
        assert spec["parallel_trials"] == 2
        assert spec["callbacks"] == {
            "early_stopping": {
                "monitor": "val_accuracy",
                "patience": 2,
                "min_delta": 0.01,
                "restore_best_weights": False,
            },
            "reduce_lr_on_plateau": {
                "monitor": "loss",
                "factor": 0.5,
                "patience": 1,
                "min_lr": 0.00001,
                "min_delta": 0.001,
            },
            "tensorboard": True,
        }

        # Early stopping switched off is sent as off, not left to its default (on).
        page.goto(live.url + "/#/new")
        _choose(page, dataset["id"])
        page.click("#advanced > summary")
        expect(advanced).to_have_attribute("open", "")
        page.uncheck("#es-enabled")
        expect(page.locator("#job-patience")).to_be_disabled()
        # A warm start from the job just submitted (it has no trial yet: nothing to try).
        first_id = job["id"]
        page.fill("#job-warm-start", first_id)
        page.fill("#job-warm-top-k", "2")
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        job = api.get(f"/api/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
        assert job["spec"]["callbacks"]["early_stopping"] is None
        assert job["spec"]["callbacks"]["reduce_lr_on_plateau"] is None
        warm = job["spec"]["warm_start"]
        assert (warm["jobs"], warm["top_k"], warm["configurations"]) == ([first_id], 2, [])


def test_datasets_of_one_file_name_are_told_apart(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    customers_frame(rows=30, seed=3).to_csv(data, index=False)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        uploads = [
            upload(
                api,
                # Different rows under one name (the same bytes twice are one dataset).
                csv_bytes(customers_frame(rows=rows, seed=seed)),
                filename="customers.csv",
                target="churned",
            )
            for seed, rows in enumerate((40, 40, 50))
        ]
        datasets = [r.json() for r in uploads]
        assert {d["name"] for d in datasets} == {"customers.csv"}
        page = open_tab().page
        page.goto(live.url + "/#/new")
        options = page.locator("#existing-dataset option:not([value=''])")
        expect(options).to_have_count(3)
        labels = dict(options.evaluate_all("os => os.map(o => [o.value, o.textContent])"))
        assert len(set(labels.values())) == 3
        for ds in datasets:
            label = labels[ds["id"]]
            assert label.startswith("customers.csv · ")
            assert f" · {ds['rows']} rows · " in label
            assert label.endswith(f" · {ds['id'][:8]}")
        _choose(page, datasets[2]["id"])
        expect(page.locator("#dataset-summary [data-summary=rows]")).to_have_text("50")

        # One uploaded through the page is offered the same way.
        page.set_input_files("#dataset-file", data)
        page.click("#upload-dataset")
        expect(page.locator("#dataset-summary [data-summary=rows]")).to_have_text("30")
        expect(options).to_have_count(4)
        chosen = page.locator("#existing-dataset option:checked")
        expect(chosen).to_contain_text("customers.csv · 30 rows · ")


def _covered_controls(page: Any) -> list[str]:
    """The page's visible controls (below the header) that the toast lies over, at any of
    five points of each: its centre and four points inset a quarter from its corners."""
    return page.evaluate(
        """() => {
          const header = document.querySelector('header').getBoundingClientRect();
          const covered = [];
          for (const c of document.querySelectorAll('#view button, #view input, #view select')) {
            if (!c.checkVisibility()) continue;
            const r = c.getBoundingClientRect();
            const points = [[0.5, 0.5], [0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
              .map(([fx, fy]) => [r.left + fx * r.width, r.top + fy * r.height])
              .filter(([x, y]) => y > header.bottom && y < innerHeight && x < innerWidth);
            const hits = points.map(([x, y]) => document.elementFromPoint(x, y));
            if (hits.some((hit) => hit && hit.closest('#toast'))) {
              covered.push(c.id || c.outerHTML.slice(0, 60));
            }
          }
          return covered;
        }"""
    )


def test_an_error_toast_goes_by_itself_and_never_covers_a_control(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "customers.csv"
    customers_frame(rows=30).to_csv(data, index=False)
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        dataset = upload_ok(api, customers_frame(rows=40), "churned")
        tab = open_tab()
        page = tab.page
        # A narrow window, where a corner toast used to lie over the Reset button.
        page.set_viewport_size({"width": 1000, "height": 700})
        page.goto(live.url + "/#/new")
        _choose(page, dataset["id"])
        toast = page.locator("#toast")

        def fail_an_upload() -> None:
            page.set_input_files("#dataset-file", data)
            page.fill("#dataset-target", "no such column")
            page.click("#upload-dataset")
            expect(toast).to_be_visible()
            expect(toast).to_contain_text("no such column")

        fail_an_upload()
        reset = page.locator("#reset-space")
        for block in ("end", "center"):
            reset.evaluate(f"b => b.scrollIntoView({{block: '{block}'}})")
            assert _covered_controls(page) == [], block
        tab.shot("toast-and-reset")
        # The control works while the message shows: Reset puts the seeded space back.
        units_min = page.locator("#space-editor tr[data-param=units] [data-field=min]")
        seeded = units_min.input_value()
        units_min.fill("2048")
        reset.click()
        expect(units_min).to_have_value(seeded)
        expect(toast).to_be_visible()
        # It goes by itself.
        expect(toast).to_be_hidden(timeout=15_000)

        # Or on a click; and a message about one page never follows the user to another.
        fail_an_upload()
        page.click("#toast .toast-close")
        expect(toast).to_be_hidden()
        fail_an_upload()
        page.click("header nav a[data-nav=jobs]")
        expect(page.locator("#jobs-table")).to_be_visible()
        expect(toast).to_be_hidden()
