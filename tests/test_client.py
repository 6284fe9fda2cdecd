"""tuner_client.Client against the live API over real HTTP, with a real worker and search."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.settings import Settings
from tests.conftest import ROOT, LiveServer, make_settings, sqlite_only
from tests.factories import SMALL_SPACE, customers_frame
from tuner_client import (
    Client,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    JobFailed,
    NotFound,
    TunerError,
    Unauthorized,
)

# Tiny: three trials of two epochs on 240 rows in SMALL_SPACE.
ROWS = [
    {"age (years)": 30, "income/yr": 61000.5, "home city": "Porto", "plan": "pro"},
    {"age (years)": None, "income/yr": 30000, "home city": None, "plan": "basic"},
]


@pytest.fixture
def customers_csv(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    customers_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


@pytest.mark.slow
@sqlite_only
def test_upload_submit_wait_and_read_every_result(
    live: LiveServer, start_worker, customers_csv: Path, tmp_path: Path
) -> None:
    """One real search, read back through every client call (a search costs most of the time
    here, so the assertions share it)."""
    with httpx.Client(base_url=live.url, timeout=30) as raw, Client(live.url) as client:
        _workflow(raw, client, live, start_worker, customers_csv, tmp_path)


def _workflow(
    raw: httpx.Client,
    client: Client,
    live: LiveServer,
    start_worker,
    customers_csv: Path,
    tmp_path: Path,
) -> None:
    dataset = client.upload(customers_csv, "churned")
    assert dataset["rows"] == 240
    assert dataset["task"] == "classification"
    assert client.dataset(dataset["id"])["sha256"] == dataset["sha256"]

    # The shortcuts land in the spec's sections, beside a section given whole.
    job = client.submit(
        dataset, algorithm="random_search", max_trials=3, epochs=2, search_space=SMALL_SPACE
    )
    assert job["status"] == "queued"
    assert job["spec"]["tuner"]["algorithm"] == "random_search"
    assert job["spec"]["tuner"]["max_trials"] == 3
    assert job["spec"]["training"]["epochs"] == 2
    assert job["search_space"]["units"]["max"] == 16

    start_worker()
    bar = io.StringIO()
    done = client.wait(job["id"], progress=bar, poll_s=0.3, timeout=300)
    assert done["status"] == "succeeded", done
    assert done["progress"]["trials_completed"] == 3
    drawn = bar.getvalue()
    assert "3/3" in drawn, drawn
    assert f"best val_accuracy={done['best']['score']:.4g}" in drawn, drawn

    # trials(): a DataFrame, one hyperparameter per column, equal to the API's JSON.
    served = raw.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
    frame = client.trials(job)
    assert list(frame["trial_id"]) == [t["trial_id"] for t in served]
    assert {"score", "epochs_run", "num_layers", "units_0", "batch_size"} <= set(frame.columns)
    for trial, (_, row) in zip(served, frame.iterrows(), strict=True):
        assert row["score"] == pytest.approx(trial["score"])
        assert row["worker"] == trial["worker"] is not None
        for name, value in trial["hyperparameters"].items():
            assert row[name] == value, (name, row[name], value)
    assert frame["started_at"].dt.tz is not None
    # Pagination: pages of two still give all three trials, best first when asked.
    paged = Client(live.url, page_size=2).trials(job, order="score")
    assert len(paged) == 3
    assert paged["score"].is_monotonic_decreasing

    best = client.best(job)
    assert best["trial_id"] == done["best"]["trial_id"]
    assert best["score"] == pytest.approx(frame["score"].max())
    assert len(best["metrics"]) == best["epochs_run"] > 0

    model = client.download_model(job, tmp_path / "best.keras")
    assert model.read_bytes() == raw.get(f"/api/v1/jobs/{job['id']}/model").content
    assert model.read_bytes()[:2] == b"PK"  # a .keras file is a zip archive
    assert not list(tmp_path.glob("*.part"))
    into_dir = client.download_model(job["id"], tmp_path)
    assert into_dir == tmp_path / f"{job['id']}-best.keras"

    predictions = client.predict(job, ROWS)
    assert len(predictions) == 2
    assert set(predictions[0]["probabilities"]) == {"no", "yes"}
    # A DataFrame works too: numpy values and NaN (missing) become JSON.
    frame_rows = customers_frame(rows=5, seed=1).drop(columns=["churned"])
    frame_rows.loc[0, "age (years)"] = np.nan
    assert len(client.predict(job, frame_rows)) == 5

    assert [j["id"] for j in client.jobs()] == [job["id"]]
    assert client.jobs(status="queued") == []
    with pytest.raises(Conflict) as finished:
        client.cancel(job)
    assert finished.value.status == 409
    assert "already finished" in finished.value.detail

    # A job that ends failed raises JobFailed with the job's error (here: past its
    # max_runtime_s, which travels in **spec); raise_on_failure=False returns it instead.
    doomed = client.submit(
        dataset, algorithm="random_search", max_trials=3, epochs=50, max_runtime_s=0.01
    )
    with pytest.raises(JobFailed) as failed:
        client.wait(doomed, progress=False, poll_s=0.3, timeout=300)
    assert failed.value.job["status"] == "failed"
    assert "max_runtime_s" in failed.value.detail
    assert client.wait(doomed, progress=False, raise_on_failure=False)["status"] == "failed"


@sqlite_only
def test_server_errors_are_typed_and_carry_the_problem_detail(
    live: LiveServer, customers_csv: Path
) -> None:
    with Client(live.url) as client:
        with pytest.raises(NotFound) as missing:
            client.job("no-such-job")
        assert missing.value.status == 404
        assert missing.value.detail == "job 'no-such-job' does not exist"
        assert missing.value.title

        with pytest.raises(InvalidRequest) as bad_target:
            client.upload(customers_csv, "no such column")
        assert bad_target.value.status == 422
        assert "'no such column' is not in the file" in bad_target.value.detail
        assert bad_target.value.errors[0]["loc"] == ["body", "target"]

        dataset = client.upload(customers_csv, "churned")
        with pytest.raises(InvalidRequest) as bad_space:
            client.submit(dataset, search_space={"neurons": {"type": "int", "min": 1, "max": 2}})
        assert "neurons" in str(bad_space.value)
        with pytest.raises(InvalidRequest) as bad_algorithm:
            client.submit(dataset, algorithm="annealing")
        assert "tuner.algorithm" in bad_algorithm.value.detail

        # No worker runs here: a queued job is cancelled at once; a second cancel conflicts.
        job = client.submit(dataset, algorithm="random_search", max_trials=1)
        assert client.cancel(job)["status"] == "cancelled"
        with pytest.raises(Conflict, match="already finished"):
            client.cancel(job["id"])
        assert client.wait(job, progress=False)["status"] == "cancelled"
        with pytest.raises(NotFound, match="no completed trial"):
            client.best(job)
        with pytest.raises(Conflict, match="predictions need a succeeded job"):
            client.predict(job, ROWS)


@sqlite_only
def test_api_keys_wrong_key_is_unauthorized_and_env_defaults_apply(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, tmp_path / "data", api_keys="right-key-0123456789")
    with LiveServer(settings) as live:
        for key in ("wrong-key", None):
            with Client(live.url, api_key=key) as client, pytest.raises(Unauthorized) as denied:
                client.jobs()
            assert denied.value.status == 401
            assert denied.value.detail
        # TUNER_URL and TUNER_API_KEY are the defaults; the service's own Settings (which read
        # TUNER_* too) still load with them set.
        monkeypatch.setenv("TUNER_URL", live.url)
        monkeypatch.setenv("TUNER_API_KEY", "right-key-0123456789")
        with Client() as client:
            assert client.url == live.url
            assert client.jobs() == []
        Settings()


def test_connection_refused_is_a_typed_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with Client(url) as client, pytest.raises(ConnectionFailed) as refused:
        client.jobs()
    assert isinstance(refused.value, TunerError)
    assert refused.value.status is None
    assert url in str(refused.value)


def test_the_client_never_imports_tensorflow() -> None:
    code = (
        "import json, sys, tuner_client, tuner_client.cli\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') "
        "if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
