"""What a finished search leaves, from the CLI and the client: the model in each format, a
front trial's model, the model card, the Pareto front, the importances; `show`; the job's
and the dataset's names in `jobs`; pruned trials; and TUNER_PORT without TUNER_URL.

Real processes against the live API, on a job whose rows are written straight into the
database and whose files are stand-ins the API serves as they are (no search runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import Engine

from app.settings import Settings
from tests.browser import (
    FILES,
    FRONT,
    MODEL_CARD,
    MULTI_OBJECTIVE_TRIALS,
    TrialRows,
    insert_job,
    multi_objective_job,
    write_stand_ins,
)
from tests.cli_support import CLIENT_COMMAND, cli, run_command
from tests.conftest import LiveServer, sqlite_only
from tuner_client import Client, Conflict

pytestmark = sqlite_only  # the commands see the same REST API on either backend


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


def test_results_from_the_command_line(
    live: LiveServer, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    job_id = multi_objective_job(engine)
    write_stand_ins(settings, job_id)
    env = {"TUNER_URL": live.url}
    short = job_id[:8]

    # The model in each format the API exports (before: "unrecognized arguments").
    for model_format in ("onnx", "saved_model", "keras"):
        run = cli(
            "download", short, "--format", model_format, "-o", str(tmp_path), cwd=tmp_path, env=env
        )
        assert run.returncode == 0, run.stderr
        assert Path(run.stdout.strip()).read_bytes() == FILES[model_format]
    assert Path(run.stdout.strip()).name == f"{job_id}-best.keras"

    # A front trial's model, named by its number as `trials` and `pareto` show it.
    run = cli("download", short, "--trial", "2", "-o", str(tmp_path), cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()).read_bytes() == b"front trial model"
    assert Path(run.stdout.strip()).name == f"{job_id}-trial-0002.keras"
    run = cli("download", short, "--trial", "7", cwd=tmp_path, env=env)
    assert run.returncode == 1
    assert "no trial '7'" in run.stderr

    card = cli("model-card", short, cwd=tmp_path, env=env)
    assert card.returncode == 0, card.stderr
    assert card.stdout.startswith("# Model card")
    card = cli("model-card", short, "--json", cwd=tmp_path, env=env)
    assert json.loads(card.stdout) == MODEL_CARD

    front = cli("pareto", short, cwd=tmp_path, env=env)
    assert front.returncode == 0, front.stderr
    lines = front.stdout.splitlines()
    assert lines[0].split()[:3] == ["trial", "val_accuracy", "(max)"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["0", "2", "4"]
    assert {
        i["trial_id"]
        for i in json.loads(cli("pareto", short, "--json", cwd=tmp_path, env=env).stdout)["items"]
    } == FRONT

    importance = cli("importance", short, cwd=tmp_path, env=env)
    assert importance.returncode == 0, importance.stderr
    assert "learning_rate" in importance.stdout
    assert "over 6 completed trials" in importance.stderr

    # `show` is `status`; both name the dataset.
    show = cli("show", short, cwd=tmp_path, env=env)
    assert show.returncode == 0, show.stderr
    assert show.stdout == cli("status", short, cwd=tmp_path, env=env).stdout
    assert "\ndataset   customers.csv (" in show.stdout
    assert "\nbest      val_accuracy=0.9 (trial 4)\n" in show.stdout

    # Trials by number, the pruned one marked in its own column.
    trials = cli("trials", short, cwd=tmp_path, env=env)
    assert trials.returncode == 0, trials.stderr
    header, *rows = trials.stdout.splitlines()
    assert header.split()[:7] == [
        "trial_id",
        "status",
        "score",
        "best_epoch",
        "epochs_run",
        "stopped_early",
        "pruned",
    ]
    pruned = {row.split()[0]: row.split()[6] for row in rows}
    assert pruned == {
        "0": "False",
        "1": "False",
        "2": "False",
        "3": "True",
        "4": "False",
        "5": "False",
    }
    csv = cli("trials", short, "--csv", cwd=tmp_path, env=env)
    assert "pruned" in csv.stdout.splitlines()[0].split(",")

    # TUNER_PORT alone finds the local service (as `make run` starts it), for both commands.
    port = {"TUNER_PORT": str(urlparse(live.url).port)}
    for command in (cli, lambda *a, **k: run_command(CLIENT_COMMAND, *a, **k)):
        jobs = command("jobs", cwd=tmp_path, env=port)
        assert jobs.returncode == 0, jobs.stderr
        head, row = jobs.stdout.splitlines()
        assert head.split() == [
            "id",
            "name",
            "status",
            "algorithm",
            "trials",
            "best",
            "dataset",
            "created",
        ]
        # The job's name and its dataset's, and the short id every command takes.
        assert "churn two ways" in row
        assert "customers.csv" in row
        assert row.split()[0] == short
        assert job_id not in jobs.stdout


def test_the_client_reads_what_the_search_left(
    live: LiveServer, settings: Settings, engine: Engine, tmp_path: Path, monkeypatch
) -> None:
    job_id = multi_objective_job(engine)
    write_stand_ins(settings, job_id)
    single = insert_job(engine, [TrialRows(trial_id="0", hyperparameters={}, score=0.5)])
    monkeypatch.delenv("TUNER_URL", raising=False)
    monkeypatch.setenv("TUNER_PORT", str(urlparse(live.url).port))
    with Client() as client:
        assert client.url == live.url
        saved = client.download_model(job_id, tmp_path, format="saved_model")
        assert saved.name == f"{job_id}-saved_model.tar.gz"
        assert saved.read_bytes() == FILES["saved_model"]
        trial = client.download_model(job_id, tmp_path / "front.keras", trial="0002")
        assert trial.read_bytes() == b"front trial model"
        with pytest.raises(ValueError, match="keras"):
            client.download_model(job_id, tmp_path, format="onnx", trial="0002")
        assert client.model_card(job_id) == MODEL_CARD
        assert client.model_card(job_id, markdown=True).startswith("# Model card")
        front = client.pareto(job_id)
        assert {item["trial_id"] for item in front["items"]} == FRONT
        assert [o["name"] for o in front["objectives"]] == ["val_accuracy", "model_params"]
        assert set(client.importance(job_id)["importances"]) >= {"learning_rate"}
        assert client.resolve_trial(job_id, "4") == "0004"
        assert client.resolve_trial(job_id, "0004") == "0004"
        with pytest.raises(Conflict):
            client.pareto(single)
        assert client.trials(job_id)["pruned"].tolist() == [
            trial_id == "0003" for trial_id in MULTI_OBJECTIVE_TRIALS
        ]
