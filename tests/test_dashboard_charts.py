"""The job page's charts and trial table, in a real headless Chromium against the live API,
on jobs whose rows are written straight into the database (curves known in advance, no
search to wait for): flags and sorting, curves of any metric overlaid on a linear or log
scale, the score chart labelled by trial id, and brushing the parallel coordinates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from app.search.overfitting import assess
from app.settings import Settings
from tests.browser import TrialRows, dashboard, hover, insert_job, row_ids
from tests.conftest import LiveServer, sqlite_only

pytestmark = sqlite_only  # the browser sees the same REST API on either backend


def _overfitting_job(engine: Engine) -> str:
    """A finished job whose trials show every flag: stopped early, overfitting, failed.

    Overfitting is computed by app.search.overfitting, as the recorder does."""
    curves = {
        # val_loss bottoms out at epoch 2 and climbs while training loss falls: overfitting.
        "0": ([1.0, 0.7, 0.5, 0.35, 0.25, 0.18], [1.0, 0.8, 0.6, 0.7, 0.8, 0.9]),
        "1": ([1.0, 0.9, 0.85], [1.0, 0.92, 0.9]),
        "2": ([1.0, 0.95], [1.0, 0.99]),
    }
    hps = {
        "0": {"num_layers": 1, "units_0": 64, "learning_rate": 0.01},
        "1": {"num_layers": 2, "units_0": 8, "units_1": 16, "learning_rate": 0.0001},
        "2": {"num_layers": 1, "units_0": 32, "learning_rate": 0.001},
    }
    outcome: dict[str, dict[str, Any]] = {
        "0": {"score": 0.9, "best_epoch": 2, "stopped_early": True, "duration_s": 9.0},
        "1": {"score": 0.6, "best_epoch": 2, "duration_s": 2.0},
        "2": {"score": None, "best_epoch": None, "status": "FAILED", "duration_s": 4.0},
    }
    trials = []
    for trial_id, (losses, val_losses) in curves.items():
        points = list(zip(range(len(losses)), losses, val_losses, strict=True))
        flags = assess(points, patience=3, best_epoch=outcome[trial_id]["best_epoch"])
        trials.append(
            TrialRows(
                trial_id=trial_id,
                hyperparameters=hps[trial_id],
                curves={"loss": losses, "val_loss": val_losses, "learning_rate": [0.001] * 6},
                overfit_epoch=flags.overfit_epoch,
                generalization_gap=flags.generalization_gap,
                **outcome[trial_id],
            )
        )
    return insert_job(engine, trials, objective=("val_loss", "min"))


def test_trial_table_flags_overfitting_and_sorts(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = _overfitting_job(engine)
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        expect(page.locator("#job-status")).to_have_text("succeeded")
        rows = page.locator("#trials-table tbody tr")
        expect(rows).to_have_count(3)
        overfit = page.locator("#trials-table tr[data-trial-id='0']")
        expect(overfit).to_have_class(re.compile(r"\boverfit\b"))
        expect(overfit).to_contain_text("from epoch 2")
        expect(overfit).to_contain_text("stopped early")
        clean = page.locator("#trials-table tr[data-trial-id='1']")
        expect(clean).not_to_have_class(re.compile(r"\boverfit\b|\bstopped-early\b"))
        expect(page.locator("#trials-table tr[data-trial-id='2']")).to_contain_text("FAILED")
        # val_loss is minimized: the best is the lowest score.
        expect(page.locator("#best-trial-id")).to_have_text("1")

        page.click("#trials-table tbody tr[data-trial-id='0']")
        expect(page.locator("#curves-trial-id")).to_have_text("0")
        expect(page.locator("#curves [data-marker=best-epoch]")).to_contain_text(
            "best epoch 2 (stopped early"
        )
        expect(page.locator("#curves [data-marker=overfit]")).to_contain_text(
            "overfitting from epoch 2"
        )
        tab.shot("job-overfitting")

        def sort_by(key: str) -> list[str]:
            page.click(f"#trials-table th[data-sort='{key}'] button")
            return row_ids(page)

        assert sort_by("score") == ["1", "0", "2"]  # ascending first for a minimized score
        assert sort_by("score") == ["0", "1", "2"]  # a missing score stays last either way
        assert sort_by("duration_s") == ["1", "2", "0"]
        assert sort_by("duration_s") == ["0", "2", "1"]
        assert sort_by("hp:learning_rate") == ["1", "2", "0"]
        assert sort_by("hp:units_1") == ["1", "0", "2"]  # absent (one layer) sorts last
        # The failed trial has no score, so it is not a line in the parallel coordinates.
        expect(page.locator("#parcoords path.trial-line")).to_have_count(2)
        # Score over trials: the failed trial is a gap, the best so far still plotted.
        expect(page.locator("#score-chart canvas")).to_have_count(1)


# Classification curves with every metric a model records; ids zero-padded as KerasTuner
# writes them (the page shows them as numbers: "02" is trial 2, as under the Optuna
# oracles). Trial 02 stopped an epoch early; the learning rate drops (reduce-on-plateau).
CURVES = {
    "00": {
        "loss": [0.9, 0.7, 0.6, 0.55],
        "val_loss": [0.95, 0.8, 0.72, 0.7],
        "accuracy": [0.5, 0.6, 0.68, 0.7],
        "val_accuracy": [0.48, 0.58, 0.62, 0.64],
        "learning_rate": [0.01, 0.01, 0.001, 0.001],
    },
    "01": {
        "loss": [0.8, 0.5, 0.4, 0.3],
        "val_loss": [0.85, 0.6, 0.5, 0.45],
        "accuracy": [0.55, 0.7, 0.8, 0.85],
        "val_accuracy": [0.52, 0.66, 0.75, 0.81],
        "learning_rate": [0.001, 0.001, 0.001, 0.0001],
    },
    "02": {
        "loss": [1.1, 1.0, 0.98],
        "val_loss": [1.2, 1.1, 1.15],
        "accuracy": [0.4, 0.45, 0.46],
        "val_accuracy": [0.38, 0.41, 0.4],
        "learning_rate": [0.1, 0.1, 0.1],
    },
}


def test_curves_of_any_metric_overlaid_and_trials_labelled_by_id(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    trials = [
        TrialRows(
            trial_id=trial_id,
            hyperparameters={"num_layers": 1, "units_0": 8 * (i + 1), "learning_rate": 0.01},
            score=curves["val_accuracy"][-1],
            curves=curves,
            best_epoch=len(curves["loss"]) - 1,
        )
        for i, (trial_id, curves) in enumerate(CURVES.items())
    ]
    job_id = insert_job(
        engine, trials, objective=("val_accuracy", "max"), task="classification", epochs=4
    )
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        # The stored id "01" is shown as trial 1, as an Optuna oracle's "1" would be.
        expect(page.locator("#best-trial-id")).to_have_text("1")
        expect(page.locator("#best-trial-id")).to_have_attribute("data-trial-id", "01")
        expect(page.locator("#trials-table tr[data-trial-id='01'] td.trial-id")).to_have_text("1")

        # The score chart counts trials by their own ids: the first point is trial 00.
        legend = hover(page, "#score-chart", 0)
        assert (legend["trial"], legend["val_accuracy"]) == ("0", "0.6400")
        assert hover(page, "#score-chart", 1)["trial"] == "2"

        # Every recorded metric can be picked: training and validation together, or alone.
        expect(page.locator("#curves-trial-id")).to_have_text("1")
        metric = page.locator("#curve-metric")
        assert metric.locator("option").evaluate_all("os => os.map(o => o.value)") == [
            "pair:loss",
            "pair:accuracy",
            "one:loss",
            "one:val_loss",
            "one:accuracy",
            "one:val_accuracy",
            "one:learning_rate",
        ]
        assert hover(page, "#curves", 1) == {
            "epoch": "3",
            "training loss": "0.3000",
            "validation loss": "0.4500",
        }
        metric.select_option("pair:accuracy")
        assert hover(page, "#curves", 1)["validation accuracy"] == "0.8100"

        # Ticking trials in the table overlays their curves on the selected one's.
        page.check("#trials-table tr[data-trial-id='00'] input.overlay")
        page.check("#trials-table tr[data-trial-id='02'] input.overlay")
        expect(page.locator("#curves-overlaid")).to_have_text(" with 0, 2")
        # A tick does not change which trial is selected.
        expect(page.locator("#curves-trial-id")).to_have_text("1")
        metric.select_option("one:val_accuracy")
        assert hover(page, "#curves", 1) == {
            "epoch": "3",
            "trial 1 val_accuracy": "0.8100",
            "trial 0 val_accuracy": "0.6400",
            "trial 2 val_accuracy": "—",  # it stopped after epoch 2
        }
        # Markers belong to one trial: none while several are overlaid.
        expect(page.locator("#curves [data-marker]")).to_have_count(0)
        tab.shot("curves-overlaid")

        # The learning rate, on a log scale: its values span three decades.
        metric.select_option("one:learning_rate")
        plot = page.locator("#curves .chart")
        expect(plot).to_have_attribute("data-scale", "linear")
        page.check("#curve-log")
        expect(plot).to_have_attribute("data-scale", "log")
        distr, low, high = plot.evaluate(
            "p => [p.chart.scales.y.distr, p.chart.scales.y.min, p.chart.scales.y.max]"
        )
        assert distr == 3  # uPlot's log distribution
        assert 0 < low <= 0.0001
        assert high >= 0.1
        assert hover(page, "#curves", 0)["trial 2 learning_rate"] == "0.1000"
        tab.shot("curves-learning-rate-log")

        # Unticking goes back to the one trial, with its markers.
        page.uncheck("#trials-table tr[data-trial-id='00'] input.overlay")
        page.uncheck("#trials-table tr[data-trial-id='02'] input.overlay")
        expect(page.locator("#curves-overlaid")).to_have_count(0)
        expect(page.locator("#curves [data-marker=best-epoch]")).to_contain_text("best epoch 3")


def test_brushing_parallel_coordinates_filters_lines_and_table(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # 90 trials: half score high (0.7-0.9), half low (0.1-0.3), in pairs; layers alternate.
    trials = [
        TrialRows(
            trial_id=str(i),
            hyperparameters={"num_layers": 1 + i % 2, "learning_rate": 10 ** (-4 + 2 * i / 89)},
            score=(0.7 if (i // 2) % 2 == 0 else 0.1) + 0.2 * i / 89,
        )
        for i in range(90)
    ]
    high = {t.trial_id for t in trials if t.score is not None and t.score >= 0.7}
    deep = {t.trial_id for t in trials if t.hyperparameters["num_layers"] == 2}
    job_id = insert_job(engine, trials, objective=("val_accuracy", "max"), task="classification")
    with LiveServer(settings) as live, dashboard(live.url, tmp_path) as open_tab:
        from playwright.sync_api import expect

        tab = open_tab()
        page = tab.page
        page.goto(f"{live.url}/#/jobs/{job_id}")
        lines = page.locator("#parcoords path.trial-line")
        expect(lines).to_have_count(90)
        expect(page.locator("#trials-table tbody tr")).to_have_count(90)

        def drag(axis: str, top: float, bottom: float) -> None:
            """Drags along an axis from `top` to `bottom` (fractions of its height)."""
            zone = page.locator(f"#parcoords g[data-axis='{axis}'] rect.brush-zone")
            zone.scroll_into_view_if_needed()
            box = zone.bounding_box()
            x = box["x"] + box["width"] / 2
            page.mouse.move(x, box["y"] + top * box["height"])
            page.mouse.down()
            page.mouse.move(x, box["y"] + bottom * box["height"], steps=5)
            page.mouse.up()

        def kept() -> set[str]:
            return set(
                page.locator("#parcoords path.trial-line:not(.filtered)").evaluate_all(
                    "ps => ps.map(p => p.dataset.trialId)"
                )
            )

        # The upper half of the score axis: the high-scoring trials only, lines and rows.
        drag("score", 0.02, 0.5)
        expect(page.locator("#trials-table tbody tr")).to_have_count(len(high))
        assert set(row_ids(page)) == high
        assert kept() == high
        expect(page.locator("#filter-note")).to_contain_text(f"{len(high)} of 90")
        # A second brush narrows further: two layers (the top of that axis) and high.
        drag("num_layers", 0.0, 0.2)
        expect(page.locator("#trials-table tbody tr")).to_have_count(len(high & deep))
        assert set(row_ids(page)) == high & deep == kept()
        tab.shot("parcoords-brushed")

        # A click on an axis clears its brush; "Clear filters" clears them all.
        box = page.locator("#parcoords g[data-axis='score'] rect.brush-zone").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator("#trials-table tbody tr")).to_have_count(len(deep))
        assert kept() == deep
        page.click("#clear-brushes")
        expect(page.locator("#trials-table tbody tr")).to_have_count(90)
        expect(page.locator("#filter-note")).to_be_hidden()
        assert kept() == {t.trial_id for t in trials}

        # Charts follow the window's width, not its height: a height-only resize (a phone's
        # address bar; a full-page screenshot makes one) leaves them as drawn, so nothing is
        # replaced under the pointer; a new width redraws them at it.
        page.locator("#parcoords svg.parcoords").evaluate("s => { s.dataset.probe = 'kept'; }")
        page.set_viewport_size({"width": 1400, "height": 700})
        page.wait_for_timeout(600)  # the page waits 200 ms for a resize to settle
        expect(page.locator("#parcoords svg[data-probe='kept']")).to_have_count(1)
        page.set_viewport_size({"width": 1000, "height": 700})
        expect(page.locator("#parcoords svg[data-probe='kept']")).to_have_count(0)
        expect(lines).to_have_count(90)
