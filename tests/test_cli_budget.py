"""A job's time budget, ensemble and verdict from the command line and the client: the
estimate at submission and with --dry-run (POST /jobs/preview, nothing queued), the time in
`status`, `jobs` and --wait's progress, `budget JOB SECONDS|none` (PATCH), and the ensemble
and the verdict in --wait's summary and in Client.summary.

Real processes against the live API with no worker: jobs are moved on in the database
(running since a known time, then finished with an ensemble and a verdict), so the output
can be checked against values known in advance.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from app.settings import Settings
from app.store.models import Job, Trial, utcnow
from app.store.unit_of_work import write_session
from tests.cli_support import CLIENT_COMMAND, cli
from tests.conftest import LiveServer, sqlite_only
from tests.factories import customers_frame
from tuner_client import Client, Conflict
from tuner_client.budget import clock

pytestmark = sqlite_only  # the commands see the same REST API on either backend

ROWS = 150
ENSEMBLE = {
    "members": [{"trial_id": "1", "weight": 0.6}, {"trial_id": "2", "weight": 0.4}],
    "score": 0.8125,
    "trial_score": 0.75,
    "test_score": None,
    "used": True,
    "metric": "val_accuracy",
    "members_are": "fold_models",
}
VERDICT = (
    "a logistic regression scores 0.953 (val_accuracy) on the same folds, above this search's 0.812"
)


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def dataset(live: LiveServer, tmp_path: Path) -> dict[str, Any]:
    customers_frame(rows=ROWS).to_csv(tmp_path / "data.csv", index=False)
    with Client(live.url) as client:
        return client.upload(tmp_path / "data.csv", "churned")


def _move(engine: Engine, job_id: str, **values: Any) -> None:
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _start(engine: Engine, job_id: str, *, elapsed_s: float, trials: int = 2) -> None:
    """The job as a worker leaves it `elapsed_s` after its start: running, `trials` done."""
    started = utcnow() - timedelta(seconds=elapsed_s)
    _move(engine, job_id, status="running", started_at=started, attempt=1)
    with write_session(engine) as session:
        for i in range(1, trials + 1):
            session.add(
                Trial(
                    job_id=job_id,
                    trial_id=str(i),
                    status="COMPLETED",
                    hyperparameters={"num_layers": 1, "units_0": 8 * i},
                    score=0.75 - i / 100,
                    epochs_run=3,
                    duration_s=2.0,
                    started_at=started,
                    finished_at=started + timedelta(seconds=2 * i),
                )
            )


def _workers(spec: dict[str, Any]) -> str:
    workers = spec["derivation"]["workers"]
    return f" and {workers} worker{'' if workers == 1 else 's'}" if workers else ""


def test_the_estimate_before_submitting_and_dry_run_queues_nothing(
    live: LiveServer, dataset: dict[str, Any], tmp_path: Path
) -> None:
    env = {"TUNER_URL": live.url}
    with Client(live.url) as client:
        preview = client.preview(dataset)
        spec = preview["spec"]
        budget = preview["max_runtime_s"]
        assert spec["derivation"]["budget_source"] == "auto"
        assert budget == spec["max_runtime_s"]
        assert budget >= 60
        # The shortcuts merge as submit's do.
        short = client.preview(dataset, max_runtime_s=20, epochs=7)
        assert (short["max_runtime_s"], short["spec"]["training"]["epochs"]) == (20, 7)
        assert client.preview(dataset, max_runtime_s=None)["max_runtime_s"] is None

    run = cli("submit", "--dataset", dataset["id"][:8], "--dry-run", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(
        f"budget    {clock(budget)} (auto: derived from {ROWS} rows{_workers(spec)}); "
        f"the search stops {clock(spec['derivation']['end_phase_s'])} before it"
    )
    assert lines[1] == (
        f"trials    as many as the budget allows, at most {preview['trials_planned']} "
        f"({spec['tuner']['algorithm']})"
    )
    assert f"lengths   {spec['derivation']['steps_per_epoch']} steps per epoch" in lines[2]
    assert f"training.epochs = {spec['training']['epochs']} (derived)" in run.stdout
    patience = spec["callbacks"]["early_stopping"]["patience"]
    assert f"callbacks.early_stopping.patience = {patience} (derived)" in run.stdout
    assert "nothing queued" in run.stderr

    # A budget shorter than one trial: the user's, with the server's note.
    run = cli("submit", "--dataset", dataset["id"], "--max-runtime", "20", "--dry-run",
              cwd=tmp_path, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("budget    20 s (yours)")
    assert "note      the search's" in run.stdout
    assert "shorter than one trial" in run.stdout
    run = cli("submit", "--dataset", dataset["id"], "--max-runtime", "none", "--dry-run",
              cwd=tmp_path, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("budget    none: the search runs all its planned trials")

    with Client(live.url) as client:
        assert client.jobs() == []  # an estimate queues nothing


def test_submit_says_the_estimate_and_budget_changes_it(
    live: LiveServer, dataset: dict[str, Any], engine: Engine, tmp_path: Path
) -> None:
    env = {"TUNER_URL": live.url}
    submitted = cli("submit", "--dataset", dataset["id"], cwd=tmp_path, env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()  # the id alone on stdout, as before
    with Client(live.url) as client:
        spec = client.job(job_id)["spec"]
    assert (
        f"budget    {clock(spec['max_runtime_s'])} (auto: derived from {ROWS} rows"
        f"{_workers(spec)})" in submitted.stderr
    )
    assert f"training.epochs = {spec['training']['epochs']} (derived)" in submitted.stderr

    run = cli("budget", job_id[:8], "600", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        f"job {job_id}: time budget 10 min (yours); the clock starts when a worker claims it"
    )
    run = cli("budget", job_id, "none", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"job {job_id}: no time budget")
    with Client(live.url) as client:
        assert client.job(job_id)["spec"]["max_runtime_s"] is None
        assert client.set_budget(job_id, 90)["spec"]["max_runtime_s"] == 90

    # Running for 20 s of its 90: the time, elapsed and left; the trials as a count.
    _start(engine, job_id, elapsed_s=20)
    status = cli("status", job_id, cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    assert "trials    2 completed\n" in status.stdout
    assert pytest.approx(20, abs=15) == _seconds(status.stdout, "time      ", " of 1 min 30 s")
    assert status.stdout.count(" left") == 1
    assert "budget    1 min 30 s (yours)" in status.stdout
    # And what the lengths came from, as the estimate said it.
    assert f"training.epochs = {spec['training']['epochs']} (derived)" in status.stdout
    listed = cli("jobs", cwd=tmp_path, env=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(job_id[:8]))
    assert "2, " in row
    assert "of 1 min 30 s" in row

    # Once finished, its budget cannot change: the server's refusal, exit 1.
    _move(engine, job_id, status="succeeded", finished_at=utcnow())
    run = cli("budget", job_id, "60", cwd=tmp_path, env=env)
    assert run.returncode == 1
    assert "only a queued or running job's budget can change" in run.stderr
    with Client(live.url) as client, pytest.raises(Conflict):
        client.set_budget(job_id, 60)


def _seconds(text: str, before: str, after: str) -> float:
    """The clock between `before` and `after` in `text`, as seconds ("1 min 5 s" -> 65)."""
    start = text.index(before) + len(before)
    words = text[start : text.index(after, start)].split()
    numbers = dict(zip(words[1::2], map(int, words[0::2]), strict=True))
    return numbers.get("min", 0) * 60 + numbers.get("s", 0)


def test_wait_shows_the_time_then_the_ensemble_and_the_verdict(
    live: LiveServer, dataset: dict[str, Any], engine: Engine, tmp_path: Path
) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("TUNER_URL", "TUNER_API_KEY")}
    waiting = subprocess.Popen(
        [*CLIENT_COMMAND, "submit", "--dataset", dataset["id"], "--max-runtime", "90", "--wait"],
        cwd=tmp_path,
        env={**base, "TUNER_URL": live.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Client(live.url) as client:
            deadline = time.monotonic() + 60
            while not (jobs := client.jobs()):
                assert time.monotonic() < deadline, "the job was never submitted"
                time.sleep(0.2)
            job_id = jobs[0]["id"]
            _start(engine, job_id, elapsed_s=30)
            time.sleep(3)  # the command polls every second: it draws the running job
            _move(
                engine,
                job_id,
                status="succeeded",
                finished_at=utcnow(),
                ensemble=ENSEMBLE,
                verdict=VERDICT,
            )
            stdout, stderr = waiting.communicate(timeout=60)
            summary = client.summary(job_id)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, stderr
    # The progress (stderr) is the time, not "2/<cap> trials".
    assert "of 1 min 30 s, " in stderr
    assert " left; 2 trials completed" in stderr
    assert "trials [" not in stderr
    # The summary: the ensemble, used or not, its members and weights, against the best
    # trial alone; and the verdict.
    for text in (stdout, summary):
        assert (
            "ensemble  used, it is the job's model (download, predict, model card): "
            "val_accuracy 0.8125 vs the best trial alone's 0.75"
        ) in text
        assert "          2 trials: 1 (60.0%), 2 (40.0%)" in text
        assert f"verdict   {VERDICT}" in text
        assert "time      ran " in text

    _move(engine, job_id, ensemble={**ENSEMBLE, "used": False, "score": 0.74}, verdict=None)
    status = cli("status", job_id, cwd=tmp_path, env={"TUNER_URL": live.url})
    assert (
        "ensemble  not used, the job's model is the best trial's: val_accuracy 0.74 vs the "
        "best trial alone's 0.75"
    ) in status.stdout
    assert "verdict" not in status.stdout
