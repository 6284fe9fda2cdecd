"""A job's time budget, ensemble and verdict on the dashboard, in a real headless Chromium
against the live API: a budgeted job's progress read as time (elapsed and left) with its
trials as a count, where its budget came from, what was derived from the table, the
server's note, its budget changed in place (PATCH), the ensemble and the verdict beside
the best trial, and the new-job form's estimate (POST /jobs/preview) before submitting.

No search runs: jobs are submitted through the API with no worker to claim them, then
moved on in the database (running since a known time, trials, an ensemble), so the page
can be checked against values known in advance.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.job_files import BEST_MODEL_FILE, BEST_TRIAL_DIR, MODEL_CARD_FILE, job_dir
from app.store.models import Job, Trial, utcnow
from app.store.unit_of_work import write_session
from tests.browser import MODEL_CARD, TrialRows, dashboard, insert_job, write_stand_ins
from tests.conftest import LiveServer, sqlite_only
from tests.factories import customers_frame, upload_ok
from tuner_client.budget import clock

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

ROWS = 150  # customers_frame's rows: the table the automatic budget is derived from
NOTE = "the budget may be shorter than one trial: expect few trials, or none"


def _running(engine: Engine, job_id: str, *, elapsed_s: float, trials: int) -> None:
    """The job as a worker leaves it `elapsed_s` after its start: running, `trials` done."""
    started = utcnow() - timedelta(seconds=elapsed_s)
    with write_session(engine) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", started_at=started, attempt=1)
        )
        for i in range(trials):
            session.add(
                Trial(
                    job_id=job_id,
                    trial_id=str(i),
                    status="COMPLETED",
                    hyperparameters={"num_layers": 1, "units_0": 8},
                    score=0.7 + i / 100,
                    epochs_run=3,
                    duration_s=2.0,
                    started_at=started + timedelta(seconds=2 * i),
                    finished_at=started + timedelta(seconds=2 * i + 2),
                )
            )


def _with_note(engine: Engine, job: dict[str, Any]) -> None:
    """The note the server writes when a budget is shorter than one trial."""
    spec = json.loads(json.dumps(job["spec"]))
    spec["derivation"]["note"] = NOTE
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == job["id"]).values(spec=spec))


def test_a_budgeted_job_reads_as_time_and_its_budget_changes_in_place(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        dataset = upload_ok(api, customers_frame(rows=ROWS), "churned")
        submitted = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]})
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()
        spec = job["spec"]
        derivation = spec["derivation"]
        budget = spec["max_runtime_s"]
        assert derivation["budget_source"] == "auto"
        assert budget >= 60
        assert job["progress"]["trials_planned"] > 100  # only a cap under the budget
        _with_note(engine, job)
        _running(engine, job["id"], elapsed_s=20, trials=2)

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job['id']}")
        # The progress is the time: elapsed of the budget, what is left; the trials a count.
        label = page.locator("#job-progress .progress-label")
        some = r"(\d+ min )?\d+ s"
        expect(label).to_have_text(
            re.compile(rf"^{some} of {re.escape(clock(budget))}, {some} left$")
        )
        expect(page.locator("#job-progress")).not_to_contain_text("/ ")
        expect(page.locator("#job-trials")).to_have_text("2 trials completed")
        fill = page.locator("#job-progress .progress-fill").get_attribute("style") or ""
        assert 0 < float(re.search(r"width: (\d+)%", fill).group(1)) < 100, fill
        workers = derivation["workers"]
        expect(page.locator("#job-budget-text")).to_have_text(
            f"Time budget {clock(budget)} (auto: derived from {ROWS} rows"
            + (f" and {workers} worker{'' if workers == 1 else 's'}" if workers else "")
            + ")."
        )
        expect(page.locator("#job-budget-note")).to_have_text(f"Note: {NOTE}.")
        # The set-up: what the server derived from the table, and from what.
        facts = page.locator("#job-derivation")
        expect(facts.locator("[data-field=steps_per_epoch] dd")).to_have_text(
            str(derivation["steps_per_epoch"])
        )
        expect(facts.locator("[data-field=fit_rows] dd")).to_have_text(str(derivation["fit_rows"]))
        expect(facts.locator("[data-field='training.epochs'] dd")).to_have_text(
            f"{spec['training']['epochs']}derived"
        )
        expect(facts.locator("[data-field=max_runtime_s] dd")).to_have_text(
            f"{clock(budget)}derived"
        )
        tab.shot("budgeted-job-running")

        # Changed in place; the server's refusal is shown under the field.
        page.click("#change-budget")
        expect(page.locator("#budget-input")).to_have_value(str(int(budget)))
        page.fill("#budget-input", "0")
        page.click("#budget-save")
        expect(page.locator("#budget-error")).to_contain_text("greater than 0")
        tab.shot("budget-refused")
        page.fill("#budget-input", "600")
        page.click("#budget-save")
        expect(page.locator("#job-budget-text")).to_have_text("Time budget 10 min (yours).")
        expect(page.locator("#budget-form")).to_be_hidden()
        expect(label).to_contain_text("of 10 min, ")
        assert api.get(f"/api/v1/jobs/{job['id']}").json()["spec"]["max_runtime_s"] == 600
        facts_budget = facts.locator("[data-field=max_runtime_s] dd")
        expect(facts_budget).to_have_text("10 minyours")

        # None: the planned trials run, and the bar counts them again.
        page.click("#change-budget")
        page.click("#budget-none")
        expect(page.locator("#job-budget-text")).to_contain_text("No time budget")
        expect(page.locator("#job-trials")).to_be_hidden()
        assert api.get(f"/api/v1/jobs/{job['id']}").json()["spec"]["max_runtime_s"] is None
        page.click("#change-budget")  # "Set a budget" now
        page.fill("#budget-input", "90")
        page.click("#budget-save")
        expect(page.locator("#job-budget-text")).to_have_text("Time budget 1 min 30 s (yours).")

        # The jobs list shows the time too, with the count, never "2 / <cap>".
        page.goto(f"{live.url}/#/")
        cell = page.locator(f"#jobs-table tr[data-job-id='{job['id']}'] .progress-label")
        expect(cell).to_have_text(re.compile(rf"^{some} / 1 min 30 s · 2 trials$"))
        tab.shot("jobs-list-budgeted")

        # Once the job has finished, its budget cannot change: no control.
        with write_session(engine) as session:
            session.execute(
                update(Job)
                .where(Job.id == job["id"])
                .values(status="succeeded", finished_at=utcnow())
            )
        page.goto(f"{live.url}/#/jobs/{job['id']}")
        expect(label).to_have_text(re.compile(rf"^ran {some} of 1 min 30 s$"))
        expect(page.locator("#change-budget")).to_be_hidden()


ENSEMBLE = {
    "members": [{"trial_id": "1", "weight": 0.6}, {"trial_id": "2", "weight": 0.4}],
    "score": 0.2,
    "trial_score": 0.25,
    "test_score": 0.21,
    "used": True,
    "metric": "val_loss",
    "members_are": "trial_models",
}
VERDICT = (
    "a ridge regression scores 0.180 (val_loss) on the same validation rows, below this "
    "search's 0.200"
)


def _finished(engine: Engine, ensemble: dict[str, Any], verdict: str | None) -> str:
    trials = [
        TrialRows(tid, {"units_0": 8 * (i + 1)}, score, curves={"loss": [1.0, 0.5]})
        for i, (tid, score) in enumerate([("1", 0.25), ("2", 0.3), ("3", 0.4)])
    ]
    job_id = insert_job(engine, trials)
    with write_session(engine) as session:  # what the search's end records
        session.execute(
            update(Job).where(Job.id == job_id).values(ensemble=ensemble, verdict=verdict)
        )
    return job_id


def test_the_ensemble_and_the_verdict_beside_the_best_trial(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    used = _finished(engine, ENSEMBLE, VERDICT)
    # The job's model is the ensemble; the best single trial's is kept beside it.
    write_stand_ins(settings, used)
    (job_dir(settings, used) / BEST_MODEL_FILE).write_bytes(b"ensemble model")
    kept = job_dir(settings, used) / BEST_TRIAL_DIR
    kept.mkdir()
    (kept / BEST_MODEL_FILE).write_bytes(b"best single trial")
    card = {**MODEL_CARD, "model": "ensemble", "trial_id": None, "ensemble": ENSEMBLE}
    (job_dir(settings, used) / MODEL_CARD_FILE).write_text(json.dumps(card))
    unused = _finished(engine, {**ENSEMBLE, "used": False, "score": 0.3, "test_score": None}, None)

    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{used}")
        verdict = page.locator("#best-verdict")
        expect(verdict).to_be_visible()
        expect(verdict).to_have_text(VERDICT)
        ensemble = page.locator("#best-ensemble")
        expect(ensemble.locator("#ensemble-used")).to_have_text("used")
        expect(ensemble.locator("h3")).to_contain_text("Ensemble of 2 trials")
        scores = ensemble.locator("#ensemble-scores")
        expect(scores.locator("[data-score=ensemble] dd")).to_have_text("0.2000")
        expect(scores.locator("[data-score=trial] dd")).to_have_text("0.2500")
        expect(scores.locator("[data-score=test] dd")).to_have_text("0.2100")
        rows = ensemble.locator("#ensemble-members tbody tr")
        assert rows.evaluate_all(
            "rs => rs.map(r => [r.dataset.trialId, r.cells[1].textContent])"
        ) == [["1", "60.0%"], ["2", "40.0%"]]
        expect(page.locator("#download-model")).to_contain_text("ensemble")
        # The model card names the members and their weights.
        expect(page.locator("#model-card-dataset")).to_contain_text(
            "2 trials: 1 (60.0%), 2 (40.0%)"
        )
        tab.shot("ensemble-used-with-verdict")

        # Both models a click away: the job's (the ensemble) and the best single trial's.
        with page.expect_download() as got:
            page.click("#download-best-trial")
        assert Path(got.value.path()).read_bytes() == b"best single trial"
        with page.expect_download() as got:
            page.click("#download-model")
        assert Path(got.value.path()).read_bytes() == b"ensemble model"

        page.goto(f"{live.url}/#/jobs/{unused}")
        ensemble = page.locator("#best-ensemble")
        expect(ensemble.locator("#ensemble-used")).to_have_text("not used")
        expect(ensemble).to_contain_text("the job's model is the best trial's")
        expect(page.locator("#download-best-trial")).to_have_count(0)
        expect(page.locator("#best-verdict")).to_have_count(0)
        expect(page.locator("#download-model")).to_have_text("Download model (.keras)")
        tab.shot("ensemble-not-used")


def test_the_new_job_form_shows_the_estimate_before_submitting(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        dataset = upload_ok(api, customers_frame(rows=ROWS), "churned")
        expected = api.post("/api/v1/jobs/preview", json={"dataset_id": dataset["id"]}).json()
        derivation = expected["spec"]["derivation"]
        tab = open_tab()
        page = tab.page
        page.goto(live.url + "/#/new")
        page.select_option("#existing-dataset", dataset["id"])

        # The form as it opens: the server derives the budget, the epochs and the patience.
        budget = page.locator("#estimate-budget")
        expect(budget).to_contain_text(
            f"Time budget {clock(expected['max_runtime_s'])} (auto: derived from {ROWS} rows"
        )
        expect(page.locator("#estimate-trials")).to_contain_text(
            f"at most {expected['trials_planned']}"
        )
        facts = page.locator("#estimate-derivation")
        expect(facts.locator("[data-field=steps_per_epoch] dd")).to_have_text(
            str(derivation["steps_per_epoch"])
        )
        expect(facts.locator("[data-field='training.epochs'] dd")).to_have_text(
            f"{expected['spec']['training']['epochs']}derived"
        )
        patience = expected["spec"]["callbacks"]["early_stopping"]["patience"]
        expect(facts.locator("[data-field='callbacks.early_stopping.patience'] dd")).to_have_text(
            f"{patience}derived"
        )
        expect(page.locator("#estimate-note")).to_be_hidden()
        tab.shot("estimate-auto")

        # A budget shorter than one trial: the user's, with the server's note.
        page.click("#advanced > summary")
        page.fill("#job-max-runtime", "20")
        expect(budget).to_contain_text("Time budget 20 s (yours)")
        expect(page.locator("#estimate-note")).to_contain_text("shorter than one trial")
        # A length the user sets is theirs, the others still derived.
        page.fill("#job-epochs", "7")
        expect(facts.locator("[data-field='training.epochs'] dd")).to_have_text("7yours")
        tab.shot("estimate-short-budget")

        # A refusal is said in the estimate, not as a toast.
        page.fill("#job-validation-split", "1.5")
        expect(page.locator("#estimate-error")).to_contain_text("validation_split")
        expect(page.locator("#toast")).to_be_hidden()
        page.fill("#job-validation-split", "0.2")
        expect(page.locator("#estimate-error")).to_be_hidden()

        # No time budget: still possible; then the planned trials all run.
        page.check("#job-no-budget")
        expect(budget).to_contain_text("No time budget")
        expect(page.locator("#estimate-trials")).to_contain_text("planned")
        assert api.get("/api/v1/jobs").json()["total"] == 0  # an estimate queues nothing
        page.click("#submit-job")
        page.wait_for_url(re.compile(r"#/jobs/\w+$"))
        job = api.get(f"/api/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
        assert job["spec"]["max_runtime_s"] is None
        assert job["spec"]["training"]["epochs"] == 7
        expect(page.locator("#job-budget-text")).to_contain_text("No time budget")
