"""A client generated from /openapi.json by openapi-python-client uploads, submits, polls and
reads trials against a live server with a real worker (what a user of a generator does)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import LiveServer, sqlite_only
from tests.factories import customers_frame

pytestmark = [sqlite_only, pytest.mark.slow]

GENERATOR = Path(sys.executable).with_name("openapi-python-client")

# Runs in a fresh interpreter with only the generated package added to the path.
USE_THE_CLIENT = """
import json, sys, time
from tuner_api import AuthenticatedClient
from tuner_api.api.datasets import upload_dataset
from tuner_api.api.jobs import list_trials, read_job, submit_job
from tuner_api.models import BodyUploadDataset, JobCreate
from tuner_api.types import File

url, csv_path = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=url, token="unused-without-keys", timeout=30)
with open(csv_path, "rb") as f:
    body = BodyUploadDataset(file=File(payload=f, file_name="customers.csv"), target="churned")
    dataset = upload_dataset.sync(client=client, body=body)
assert dataset.__class__.__name__ == "DatasetRead", dataset
spec = JobCreate.from_dict({
    "dataset_id": dataset.id,
    "tuner": {"algorithm": "random_search", "max_trials": 2, "seed": 1},
    "training": {"epochs": 2},
})
job = submit_job.sync(client=client, body=spec)
assert job.status == "queued", job
deadline = time.monotonic() + 240
while job.status not in ("succeeded", "failed", "cancelled"):
    assert time.monotonic() < deadline, "the job did not finish"
    time.sleep(0.5)
    job = read_job.sync(client=client, job_id=job.id)
trials = list_trials.sync(client=client, job_id=job.id)
print(json.dumps({
    "dataset_rows": dataset.rows,
    "status": job.status,
    "trials": [t.trial_id for t in trials.items],
    "total": trials.total,
}))
"""


def test_a_generated_client_uploads_submits_polls_and_reads_trials(
    settings: Settings, start_worker, tmp_path: Path
) -> None:
    assert GENERATOR.exists(), f"{GENERATOR} missing: it is a dev dependency"
    data = tmp_path / "customers.csv"
    customers_frame(rows=80).to_csv(data, index=False)
    with LiveServer(settings) as live:
        document = tmp_path / "openapi.json"
        document.write_text(httpx.get(live.url + "/openapi.json").text)
        generated = subprocess.run(
            [
                str(GENERATOR),
                "generate",
                "--path",
                str(document),
                "--meta",
                "none",
                "--output-path",
                str(tmp_path / "tuner_api"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert generated.returncode == 0, generated.stdout + generated.stderr
        # The one warning it gives: TensorBoard's .tar.gz (application/gzip) is not a type it
        # knows; every other operation is generated.
        warnings = generated.stdout.count("WARNING")
        assert warnings <= 1, generated.stdout
        for op in ("upload_dataset", "submit_job", "read_job", "list_trials", "predict"):
            assert list((tmp_path / "tuner_api" / "api").glob(f"*/{op}.py")), op
        start_worker()
        run = subprocess.run(
            [sys.executable, "-c", USE_THE_CLIENT, live.url, str(data)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["dataset_rows"] == 80
    assert result["status"] == "succeeded"
    assert result["total"] == 2
    assert len(result["trials"]) == 2
    shutil.rmtree(tmp_path / "tuner_api")
