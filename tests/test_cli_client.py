"""The client commands of `tuner-service`, run as real processes against the live API."""

from __future__ import annotations

import io
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from app.settings import Settings
from tests.cli_support import COMMAND, SPACE, cli
from tests.conftest import LiveServer, make_settings, sqlite_only
from tests.factories import customers_frame

pytestmark = sqlite_only


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def data_csv(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    customers_frame().to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_submit_wait_then_every_command_on_the_finished_job(
    live: LiveServer, start_worker, data_csv: Path, tmp_path: Path
) -> None:
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    start_worker()
    url = ["--url", live.url]
    submitted = cli(
        "submit", "data.csv", "--target", "churned", "--algorithm", "random_search",
        "--max-trials", "2", "--epochs", "2", "--space", "space.json", "--wait", *url,
        cwd=tmp_path,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.splitlines()[0]
    assert "status    succeeded" in submitted.stdout
    assert "trials    2/2" in submitted.stdout
    # The progress bar (stderr): trials done / planned and the best score so far.
    assert "2/2" in submitted.stderr
    assert "best val_accuracy=" in submitted.stderr
    assert "240 rows" in submitted.stderr

    with httpx.Client(base_url=live.url) as raw:
        job = raw.get(f"/api/v1/jobs/{job_id}").json()
        served_trials = raw.get(f"/api/v1/jobs/{job_id}/trials").json()["items"]
        model = raw.get(f"/api/v1/jobs/{job_id}/model").content
    assert job["status"] == "succeeded"
    assert job["spec"]["tuner"]["max_trials"] == 2
    assert job["spec"]["training"]["epochs"] == 2
    # --space reached the server: one fixed layer, so no trial has a units_1.
    assert job["search_space"]["num_layers"]["type"] == "fixed"
    assert all("units_1" not in t["hyperparameters"] for t in served_trials)

    # From here on the URL comes from TUNER_URL.
    env = {"TUNER_URL": live.url}
    listed = cli("jobs", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    # The list shows each id by its shortest unique prefix (8 characters at least).
    line = next(line for line in listed.stdout.splitlines() if job_id[:8] in line)
    assert "succeeded" in line
    assert "data.csv" in line  # the dataset's name, not its id
    assert "random_search" in line
    assert f"{job['best']['score']:.4g}" in line

    status = cli("status", job_id, cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    assert "status    succeeded" in status.stdout
    assert f"best      val_accuracy={job['best']['score']:.4g}" in status.stdout
    as_json = cli("status", job_id, "--json", cwd=tmp_path, env=env)
    assert json.loads(as_json.stdout)["best"] == job["best"]

    csv = cli("trials", job_id, "--csv", cwd=tmp_path, env=env)
    assert csv.returncode == 0, csv.stderr
    frame = pd.read_csv(io.StringIO(csv.stdout), dtype={"trial_id": str})
    assert list(frame["trial_id"]) == [t["trial_id"] for t in served_trials]
    for trial, (_, row) in zip(served_trials, frame.iterrows(), strict=True):
        assert row["score"] == pytest.approx(trial["score"])
        assert row["units_0"] == trial["hyperparameters"]["units_0"]
        assert row["learning_rate"] == pytest.approx(trial["hyperparameters"]["learning_rate"])
    table = cli("trials", job_id, cwd=tmp_path, env=env)
    assert all(t["trial_id"] in table.stdout for t in served_trials)
    assert "units_0" in table.stdout.splitlines()[0]

    download = cli("download", job_id, "-o", "best.keras", cwd=tmp_path, env=env)
    assert download.returncode == 0, download.stderr
    assert (tmp_path / "best.keras").read_bytes() == model

    cancel = cli("cancel", job_id, cwd=tmp_path, env=env)
    assert cancel.returncode == 1
    assert f"Job finished: job '{job_id}' has already finished (succeeded)" in cancel.stderr

    _predict_then_delete(job_id, live, tmp_path, env)


def _predict_then_delete(
    job_id: str, live: LiveServer, tmp_path: Path, env: dict[str, str]
) -> None:
    """predict and delete on the succeeded job, named by the short id the progress bar shows."""
    inputs = customers_frame().drop(columns=["churned"]).head(5)
    inputs.to_csv(tmp_path / "rows.csv", index=False)  # row 3 has no age: an empty cell
    # The first prediction loads the model (TensorFlow in a child process): seconds.
    with httpx.Client(base_url=live.url, timeout=120) as raw:
        rows = json.loads(inputs.to_json(orient="records"))
        served = raw.post(f"/api/v1/jobs/{job_id}/predict", json={"rows": rows}).json()
    short = job_id[:8]
    to_stdout = cli("predict", short, "rows.csv", cwd=tmp_path, env=env)
    assert to_stdout.returncode == 0, to_stdout.stderr
    frame = pd.read_csv(io.StringIO(to_stdout.stdout))
    assert list(frame.columns) == ["label", "probability_no", "probability_yes"]
    assert len(frame) == 5
    for prediction, (_, row) in zip(served["predictions"], frame.iterrows(), strict=True):
        assert row["label"] == prediction["label"]
        assert row["probability_yes"] == pytest.approx(prediction["probabilities"]["yes"])
        assert row["probability_no"] == pytest.approx(prediction["probabilities"]["no"])
    to_file = cli("predict", short, "rows.csv", "-o", "out.csv", cwd=tmp_path, env=env)
    assert to_file.returncode == 0, to_file.stderr
    assert (tmp_path / "out.csv").read_text() == to_stdout.stdout
    assert "5 predictions written to out.csv" in to_file.stderr

    deleted = cli("delete", short, cwd=tmp_path, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert f"job {job_id}: deleted" in deleted.stdout
    with httpx.Client(base_url=live.url) as raw:
        assert raw.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_errors_print_the_servers_message_and_exit_non_zero(
    live: LiveServer, data_csv: Path, tmp_path: Path
) -> None:
    url = ["--url", live.url]
    missing = cli("status", "no-such-job", *url, cwd=tmp_path)
    assert missing.returncode == 1
    assert "job 'no-such-job' does not exist" in missing.stderr
    assert missing.stdout == ""

    bad_target = cli("submit", "data.csv", "--target", "nope", *url, cwd=tmp_path)
    assert bad_target.returncode == 1
    assert "Invalid dataset" in bad_target.stderr
    assert "target column 'nope' is not in the file" in bad_target.stderr

    (tmp_path / "space.json").write_text('{"neurons": {"type": "int", "min": 1, "max": 4}}')
    bad_space = cli("submit", "data.csv", "--target", "churned", "--space", "space.json", *url,
                    cwd=tmp_path)  # fmt: skip
    assert bad_space.returncode == 1
    assert "neurons" in bad_space.stderr

    (tmp_path / "broken.json").write_text("{not json")
    unreadable = cli("submit", "data.csv", "--target", "churned", "--space", "broken.json", *url,
                     cwd=tmp_path)  # fmt: skip
    assert unreadable.returncode == 2
    assert "broken.json" in unreadable.stderr

    # A queued job (no worker here) is cancelled at once; cancelling it again is a conflict.
    queued = cli("submit", "data.csv", "--target", "churned", "--max-trials", "1",
                 "--parallel-trials", "2", "--folds", "3", *url, cwd=tmp_path)  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    status = cli("status", job_id, "--json", *url, cwd=tmp_path)
    assert json.loads(status.stdout)["spec"]["parallel_trials"] == 2
    assert json.loads(status.stdout)["spec"]["training"]["cross_validation"] == {"folds": 3}
    one_split = cli("submit", "data.csv", "--target", "churned", "--max-trials", "1",
                    "--parallel-trials", "auto", "--folds", "none", *url, cwd=tmp_path)  # fmt: skip
    assert one_split.returncode == 0, one_split.stderr
    spec = json.loads(cli("status", one_split.stdout.strip(), "--json", *url, cwd=tmp_path).stdout)
    assert spec["spec"]["parallel_trials"] == "auto"
    assert spec["spec"]["training"]["cross_validation"] is None
    assert cli("cancel", one_split.stdout.strip(), *url, cwd=tmp_path).returncode == 0
    first = cli("cancel", job_id, *url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "cancelled" in first.stdout
    again = cli("cancel", job_id, *url, cwd=tmp_path)
    assert again.returncode == 1
    assert "has already finished (cancelled)" in again.stderr

    # --wait exits 0 only for a succeeded job: cancel one while the command waits on it.
    waiting = subprocess.Popen(
        [*COMMAND, "submit", "data.csv", "--target", "churned", "--wait", *url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert waiting.stdout is not None
    waited_id = waiting.stdout.readline().strip()  # printed before the wait begins
    assert cli("cancel", waited_id, *url, cwd=tmp_path).returncode == 0
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 1, err
    assert "status    cancelled" in out

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    refused = cli("jobs", "--url", dead, cwd=tmp_path)
    assert refused.returncode == 1
    assert f"cannot reach the tuner service at {dead}" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_api_key_flag_and_environment(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "data", api_keys="right-key-0123456789")
    with LiveServer(settings) as live:
        env = {"TUNER_URL": live.url}
        wrong = cli("jobs", "--api-key", "wrong-key", cwd=tmp_path, env=env)
        assert wrong.returncode == 1
        assert wrong.stderr.startswith(
            "error: 401 Unauthorized: a valid API key is required: Authorization: Bearer <key>"
        )
        none = cli("jobs", cwd=tmp_path, env=env)
        assert none.returncode == 1
        assert "401" in none.stderr
        right = cli("jobs", cwd=tmp_path, env={**env, "TUNER_API_KEY": "right-key-0123456789"})
        assert right.returncode == 0, right.stderr
        assert "no jobs" in right.stderr
