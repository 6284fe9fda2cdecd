"""The job page's slice, contour and score-distribution (EDF) plots, in a real headless
Chromium against the live API: on a small real search run by a worker, and on jobs whose
rows are written straight into the database (a log-sampled learning rate, a pruned and a
failed trial, tied scores, a job of one trial), and the distribution per job when compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.settings import Settings
from tests.browser import TrialRows, dashboard, insert_job
from tests.conftest import LiveServer, sqlite_only
from tests.factories import regression_frame, submit, trials_of, upload_ok, wait_for_job

pytestmark = sqlite_only  # the browser sees the same REST API on either backend

GRID_CELLS = 20 * 20


def _plotted(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials the plots draw: completed, not pruned, with a score."""
    return [
        t
        for t in trials
        if t["status"] == "COMPLETED" and not t["pruned"] and t["score"] is not None
    ]


def _positions(page: Any, selector: str) -> dict[str, tuple[float, float]]:
    """{trial id: (cx, cy)} of the points `selector` matches."""
    return page.locator(selector).evaluate_all(
        "cs => Object.fromEntries(cs.map(c => [c.dataset.trialId, "
        "[+c.getAttribute('cx'), +c.getAttribute('cy')]]))"
    )


def _edf_steps(page: Any) -> list[tuple[float, float, float]]:
    """(score, fraction, cy) of each step of the job page's EDF, left to right."""
    return page.locator("#edf-panel circle.edf-step").evaluate_all(
        "cs => cs.map(c => [+c.dataset.score, +c.dataset.fraction, +c.getAttribute('cy')])"
    )


@pytest.mark.slow
def test_plots_of_a_real_search(settings: Settings, start_worker, tmp_path: Path) -> None:
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
        dashboard(live.url, tmp_path) as open_tab,
    ):
        from playwright.sync_api import expect

        dataset = upload_ok(api, regression_frame(rows=80, features=2), "target value")
        job = submit(
            api,
            dataset["id"],
            tuner={"algorithm": "random_search", "max_trials": 4, "seed": 3},
            training={"epochs": 2},
            pruning=None,  # every trial runs its epochs: all four are plotted
            search_space={
                "num_layers": {"type": "fixed", "value": 1},
                "units": {"type": "pow2", "min": 2, "max": 8},
                "learning_rate": {"type": "float", "min": 1e-3, "max": 1e-1, "sampling": "log"},
                "batch_size": {"type": "fixed", "value": 32},
            },
        )
        start_worker()
        assert wait_for_job(api, job["id"])["status"] == "succeeded"
        plotted = _plotted(trials_of(api, job["id"]))
        assert len(plotted) >= 3, plotted

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job['id']}")
        expect(page.locator("#job-status")).to_have_text("succeeded")

        # Slice: one point per completed trial; another hyperparameter moves them along x.
        slice_points = page.locator("#slice-panel circle.slice-point")
        expect(slice_points).to_have_count(len(plotted))
        names = page.locator("#slice-param option").evaluate_all("os => os.map(o => o.value)")
        assert "learning_rate" in names, names
        assert len(names) >= 2, names
        other = next(n for n in names if n != "learning_rate")
        page.select_option("#slice-param", "learning_rate")
        expect(page.locator("#slice-panel [data-axis=x]")).to_have_text("learning_rate (log scale)")
        before = _positions(page, "#slice-panel circle.slice-point")
        assert set(before) == {t["trial_id"] for t in plotted}
        page.select_option("#slice-param", other)
        expect(page.locator("#slice-panel [data-axis=x]")).to_contain_text(other)
        after = _positions(page, "#slice-panel circle.slice-point")
        assert set(after) == set(before)
        assert [after[i][0] for i in sorted(after)] != [before[i][0] for i in sorted(before)]
        # The score stays on y: only x moved.
        assert all(after[i][1] == before[i][1] for i in before)

        # Contour: the grid, and one point per trial over it.
        contour = page.locator("#contour-panel")
        expect(contour.locator("rect.contour-cell")).to_have_count(GRID_CELLS)
        expect(contour.locator("circle.contour-point")).to_have_count(len(plotted))
        assert page.locator("#contour-x").input_value() != page.locator("#contour-y").input_value()

        # EDF: a step per distinct score, the last at 100%.
        scores = sorted({t["score"] for t in plotted})
        expect(page.locator("#edf-panel circle.edf-step")).to_have_count(len(scores))
        steps = _edf_steps(page)
        assert [s for s, _, _ in steps] == pytest.approx(scores)
        assert steps[-1][1] == 1
        assert steps[-1][2] == min(cy for *_, cy in steps)  # the highest point
        expect(page.locator("#edf-panel .plot-caption")).to_contain_text("lower is better")
        tab.shot("job-plots")


def _rows(learning_rate: float, activation: str, score: float | None, **kw: Any) -> TrialRows:
    hps = {"num_layers": 1, "units_0": 2, "activation": activation, "learning_rate": learning_rate}
    return TrialRows(trial_id=kw.pop("trial_id"), hyperparameters=hps, score=score, **kw)


# trial id: (learning_rate, activation, val_loss). 02 and 05 tie; 06 was pruned, 07 failed.
TRIALS = {
    "00": (1e-4, "relu", 0.9),
    "01": (1e-3, "tanh", 0.4),
    "02": (1e-2, "relu", 0.6),
    "03": (1e-3, "relu", 0.5),
    "04": (1e-4, "tanh", 0.8),
    "05": (1e-2, "tanh", 0.6),
}


def _known_job(engine: Engine) -> str:
    trials = [_rows(lr, act, score, trial_id=i) for i, (lr, act, score) in TRIALS.items()]
    trials.append(_rows(1e-3, "relu", 0.1, trial_id="06", pruned=True))
    trials.append(_rows(1e-3, "relu", None, trial_id="07", status="FAILED"))
    return insert_job(engine, trials, objective=("val_loss", "min"))


def test_plots_follow_the_search_space_and_leave_out_pruned_trials(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = _known_job(engine)
    single = insert_job(engine, [_rows(1e-3, "relu", 0.5, trial_id="00")])
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        expect(page.locator("#job-status")).to_have_text("succeeded")

        # Slice over the log-sampled learning rate: its decades evenly spaced; the pruned and
        # the failed trial left out.
        page.select_option("#slice-param", "learning_rate")
        expect(page.locator("#slice-panel [data-axis=x]")).to_have_text("learning_rate (log scale)")
        expect(page.locator("#slice-panel circle.slice-point")).to_have_count(len(TRIALS))
        place = _positions(page, "#slice-panel circle.slice-point")
        assert set(place) == set(TRIALS)
        low, mid, high = place["00"][0], place["01"][0], place["02"][0]
        assert low < mid < high
        assert mid - low == pytest.approx(high - mid, abs=0.2)
        # The score on y, as it is: a higher loss higher up (smaller cy).
        assert place["00"][1] < place["02"][1] < place["03"][1] < place["01"][1]
        expect(page.locator("#slice-panel .plot-caption")).to_contain_text(
            "2 pruned, failed or unfinished trial(s) left out"
        )
        # Categories evenly spaced, in the search space's order (relu, tanh).
        page.select_option("#slice-param", "activation")
        expect(page.locator("#slice-panel [data-axis=x]")).to_have_text("activation")
        place = _positions(page, "#slice-panel circle.slice-point")
        assert place["00"][0] == place["02"][0] < place["01"][0] == place["05"][0]

        # Contour of the two: the grid and one point per plotted trial.
        page.select_option("#contour-x", "learning_rate")
        page.select_option("#contour-y", "activation")
        expect(page.locator("#contour-panel rect.contour-cell")).to_have_count(GRID_CELLS)
        expect(page.locator("#contour-panel circle.contour-point")).to_have_count(len(TRIALS))
        expect(page.locator("#contour-panel [data-legend=best]")).to_have_text("0.4000")
        expect(page.locator("#contour-panel [data-legend=worst]")).to_have_text("0.9000")

        # EDF: the tie is one step; the pruned trial's 0.1 is not among them.
        distinct = sorted({score for *_, score in TRIALS.values()})
        expect(page.locator("#edf-panel circle.edf-step")).to_have_count(len(distinct))
        steps = _edf_steps(page)
        assert [s for s, _, _ in steps] == distinct
        assert [f for _, f, _ in steps] == pytest.approx([1 / 6, 2 / 6, 4 / 6, 5 / 6, 1])
        expect(page.locator("#edf-panel .plot-caption")).to_contain_text("Lower is better")
        tab.shot("job-plots-known")

        # One trial: nothing to plot, and each panel says so.
        page.goto(f"{live.url}/#/jobs/{single}")
        expect(page.locator("#job-status")).to_have_text("succeeded")
        expect(page.locator("#contour-panel .plot-empty")).to_contain_text("Not enough trials")
        expect(page.locator("#contour-panel .plot-empty")).to_contain_text("has 1")
        expect(page.locator("#contour-panel rect.contour-cell")).to_have_count(0)
        expect(page.locator("#slice-panel .plot-empty")).to_contain_text("Not enough trials")
        expect(page.locator("#edf-panel .plot-empty")).to_contain_text("Not enough trials")

        # Compared, each job is a line of the distribution, with a step per distinct score.
        page.goto(f"{live.url}/#/compare/{job_id},{single}")
        lines = page.locator("#compare-edf .edf-series")
        expect(lines).to_have_count(2)
        expect(lines.nth(0).locator("circle.edf-step")).to_have_count(len(distinct))
        expect(lines.nth(1).locator("circle.edf-step")).to_have_count(1)
        expect(page.locator("#compare-edf-note")).to_contain_text("Lower is better")
