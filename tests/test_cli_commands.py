"""The client commands without a search: short ids, submit --dataset, datasets, delete,
--max-runtime / --name, and the program's name in its help (real processes, live API)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.cli_support import CLIENT_COMMAND, COMMAND, cli, run_command
from tests.conftest import LiveServer, sqlite_only
from tests.factories import customers_frame
from tuner_client import Client, NotFound


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def data_csv(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    customers_frame().to_csv(path, index=False)
    return path


def _submit_jobs(live: LiveServer, data_csv: Path, count: int) -> list[str]:
    with Client(live.url) as client:
        dataset = client.upload(data_csv, "churned")
        return [client.submit(dataset, max_trials=1)["id"] for _ in range(count)]


def _unique_prefix(ids: list[str], job_id: str) -> str:
    """The shortest start of job_id that no other id shares."""
    others = [other for other in ids if other != job_id]
    return next(
        job_id[:n] for n in range(1, 33) if not any(o.startswith(job_id[:n]) for o in others)
    )


@sqlite_only
def test_short_job_ids_unique_ambiguous_and_unknown(
    live: LiveServer, data_csv: Path, tmp_path: Path
) -> None:
    # 17 ids over 16 hex digits: at least two share their first character.
    ids = _submit_jobs(live, data_csv, 17)
    env = {"TUNER_URL": live.url}
    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    sharing = sorted(i for i in ids if i.startswith(first))

    ambiguous = cli("status", first, cwd=tmp_path, env=env)
    assert ambiguous.returncode == 2
    assert f"'{first}' is the start of {len(sharing)} job ids; give more of it" in ambiguous.stderr
    for candidate in sharing:
        assert f"  {candidate}: queued, created " in ambiguous.stderr
    assert ambiguous.stdout == ""

    target = sharing[0]
    prefix = _unique_prefix(ids, target)
    for command in (cli, lambda *a, **k: run_command(CLIENT_COMMAND, *a, **k)):
        status = command("status", prefix.upper(), "--json", cwd=tmp_path, env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["id"] == target

    absent = next(
        f"{c}{d}" for c in "0123456789abcdef" for d in "0123456789abcdef"
        if not any(i.startswith(f"{c}{d}") for i in ids)
    )  # fmt: skip
    unknown = cli("cancel", absent, cwd=tmp_path, env=env)
    assert unknown.returncode == 1
    assert f"job '{absent}' does not exist (no job id starts with it)" in unknown.stderr
    # A full id is used as given: the server's own 404, not the listing's.
    full = cli("status", "f" * 32, cwd=tmp_path, env=env)
    assert full.returncode == 1
    assert f"job '{'f' * 32}' does not exist" in full.stderr
    assert "starts with" not in full.stderr


@sqlite_only
def test_resolve_job_pages_through_the_list(live: LiveServer, data_csv: Path) -> None:
    ids = _submit_jobs(live, data_csv, 5)
    oldest = ids[0]  # newest first: the oldest is on the last page of two
    with Client(live.url, page_size=2) as client:
        assert client.resolve_job(_unique_prefix(ids, oldest)) == oldest
        # A full id costs no listing: one that does not exist comes back as it was.
        assert client.resolve_job("0" * 32) == "0" * 32
        with pytest.raises(NotFound):
            client.resolve_job("zz")


@sqlite_only
def test_submit_on_an_uploaded_dataset_with_name_and_max_runtime(
    live: LiveServer, data_csv: Path, tmp_path: Path
) -> None:
    env = {"TUNER_URL": live.url}
    with Client(live.url) as client:
        dataset = client.upload(data_csv, "churned", name="customers")
    submitted = cli("submit", "--dataset", dataset["id"][:6], "--max-runtime", "90",
                    "--name", "night run", "--max-trials", "3", cwd=tmp_path, env=env)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert "uploaded" not in submitted.stderr
    job_id = submitted.stdout.strip()
    with httpx.Client(base_url=live.url) as raw:
        job = raw.get(f"/api/v1/jobs/{job_id}").json()
        assert raw.get("/api/v1/datasets").json()["total"] == 1  # nothing uploaded again
    assert job["dataset_id"] == dataset["id"]
    assert job["spec"]["max_runtime_s"] == 90
    assert job["name"] == "night run"
    assert job["spec"]["tuner"]["max_trials"] == 3
    status = cli("status", job_id, cwd=tmp_path, env=env)
    assert "name      night run" in status.stdout

    both = cli("submit", "data.csv", "--dataset", dataset["id"], cwd=tmp_path, env=env)
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
    neither = cli("submit", "--target", "churned", cwd=tmp_path, env=env)
    assert neither.returncode == 2
    with_target = cli("submit", "--dataset", dataset["id"], "--target", "plan", cwd=tmp_path,
                      env=env)  # fmt: skip
    assert with_target.returncode == 2
    assert "--target and --task describe a file to upload" in with_target.stderr
    unknown = cli("submit", "--dataset", "zz", cwd=tmp_path, env=env)
    assert unknown.returncode == 1
    assert "dataset 'zz' does not exist" in unknown.stderr


@sqlite_only
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("{not json", "Expecting property name"),
        ('["units"]', "expected a JSON object of hyperparameters"),
    ],
)
def test_a_bad_space_file_uploads_nothing(
    live: LiveServer, data_csv: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "space.json").write_text(content)
    bad = cli("submit", "data.csv", "--target", "churned", "--space", "space.json",
              "--url", live.url, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2
    assert "--space space.json" in bad.stderr
    assert message in bad.stderr
    with httpx.Client(base_url=live.url) as raw:
        assert raw.get("/api/v1/datasets").json()["total"] == 0
        assert raw.get("/api/v1/jobs").json()["total"] == 0


@sqlite_only
def test_datasets_and_delete_dataset(live: LiveServer, data_csv: Path, tmp_path: Path) -> None:
    env = {"TUNER_URL": live.url}
    empty = cli("datasets", cwd=tmp_path, env=env)
    assert empty.returncode == 0, empty.stderr
    assert "no datasets" in empty.stderr
    with Client(live.url) as client:
        used = client.upload(data_csv, "churned", name="used")
        client.submit(used, max_trials=1)
        spare = client.upload(data_csv, "plan", name="spare")
    listed = cli("datasets", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["id", "name", "rows", "task", "created"]
    assert lines[0].split()[:4] == [spare["id"], "spare", "240", "classification"]
    assert lines[1].split()[:4] == [used["id"], "used", "240", "classification"]

    in_use = cli("delete-dataset", used["id"][:7], cwd=tmp_path, env=env)
    assert in_use.returncode == 1
    assert f"dataset '{used['id']}' is used by 1 job(s)" in in_use.stderr
    gone = cli("delete-dataset", spare["id"][:7], cwd=tmp_path, env=env)
    assert gone.returncode == 0, gone.stderr
    assert f"dataset {spare['id']}: deleted" in gone.stdout
    with httpx.Client(base_url=live.url) as raw:
        assert [d["id"] for d in raw.get("/api/v1/datasets").json()["items"]] == [used["id"]]


@sqlite_only
def test_delete_a_queued_job_is_the_servers_409(
    live: LiveServer, data_csv: Path, tmp_path: Path
) -> None:
    (job_id,) = _submit_jobs(live, data_csv, 1)  # no worker: it stays queued
    env = {"TUNER_URL": live.url}
    refused = cli("delete", job_id, cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert (
        f"409 Job not finished: job '{job_id}' is queued: cancel it, then delete it once it "
        "has stopped" in refused.stderr
    )
    assert cli("cancel", job_id, cwd=tmp_path, env=env).returncode == 0
    deleted = cli("delete", job_id, cwd=tmp_path, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert cli("status", job_id, cwd=tmp_path, env=env).returncode == 1


@pytest.mark.parametrize(
    ("command", "program"),
    [
        (CLIENT_COMMAND, "tuner"),
        ([sys.executable, "-m", "tuner_client"], "tuner"),
        ([sys.executable, "-m", "app.cli"], "tuner-service"),
        (None, "tuner-service"),
    ],
)
def test_help_names_the_program_that_was_run(
    command: list[str] | None, program: str, tmp_path: Path
) -> None:
    command = command or COMMAND
    top = run_command(command, "--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith(f"usage: {program} "), top.stdout
    for name in ("predict", "datasets", "delete", "delete-dataset"):
        assert name in top.stdout
    sub = run_command(command, "predict", "--help", cwd=tmp_path)
    assert sub.stdout.startswith(f"usage: {program} predict "), sub.stdout
    assert "__main__" not in top.stdout + sub.stdout
