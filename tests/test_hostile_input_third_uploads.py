"""Hostile input, third pass: the upload side (issue 26 items 2, 5, 7, 8, 9, 10, 11; issue 27
item 1). Each refusal is a 4xx problem+json naming the column or field, and a failed upload
keeps nothing on disk."""

from __future__ import annotations

import datetime
import decimal
import errno
import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

import app.api.routes.datasets as dataset_routes
import app.store.dataset_writes as dataset_writes
from app.search.table_readers import read_table
from app.settings import Settings
from app.store.unit_of_work import write_session
from tests.conftest import LiveServer
from tests.factories import (
    assert_problem,
    csv_bytes,
    customers_frame,
    dataset_row,
    npz_bytes,
    upload,
    upload_ok,
)

ROWS = 40


@contextmanager
def serving(settings: Settings, **overrides: Any) -> Iterator[tuple[httpx.Client, str]]:
    """The API under `settings` changed by `overrides`: a client, and the server's URL."""
    changed = settings.model_copy(update=overrides)
    with LiveServer(changed) as live, httpx.Client(base_url=live.url, timeout=60) as api:
        yield api, live.url


def _stored_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.datasets_dir.iterdir())


def _parquet(**columns: pa.Array) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


X = np.arange(ROWS, dtype="float64")
UNUSUAL_TARGETS = {
    "npz datetime64": (
        npz_bytes(x=X.reshape(-1, 1), y=np.arange(ROWS).astype("datetime64[D]")),
        "d.npz",
        "timestamps (datetime64",
    ),
    "npz bytes": (
        npz_bytes(x=X.reshape(-1, 1), y=np.array([b"a", b"b"] * (ROWS // 2))),
        "d.npz",
        "raw bytes (|s1)",
    ),
    "parquet date32": (
        _parquet(
            x=pa.array(X), y=pa.array([datetime.date(2020, 1, 1 + i % 28) for i in range(ROWS)])
        ),
        "d.parquet",
        "holds dates",
    ),
    "parquet time64": (
        _parquet(
            x=pa.array(X),
            y=pa.array([datetime.time(i % 24) for i in range(ROWS)], pa.time64("us")),
        ),
        "d.parquet",
        "holds times of day",
    ),
    "parquet timestamp with a time zone": (
        _parquet(
            x=pa.array(X),
            y=pa.array(
                [datetime.datetime(2020, 1, 1, i % 24) for i in range(ROWS)],
                pa.timestamp("us", tz="UTC"),
            ),
        ),
        "d.parquet",
        "timestamps (datetime64[us, utc])",
    ),
}


@pytest.mark.parametrize("case", sorted(UNUSUAL_TARGETS))
def test_an_unusual_target_type_is_a_422_naming_it_and_keeps_no_file(
    api: httpx.Client, settings: Settings, case: str
) -> None:
    before = _stored_files(settings)
    content, filename, what = UNUSUAL_TARGETS[case]
    response = upload(api, content, filename=filename, target="y")
    body = assert_problem(response, 422, "target 'y'", what)
    assert body["errors"][0]["loc"] == ["body", "target"]
    assert _stored_files(settings) == before  # nothing kept, not even a temp file
    assert api.get("/api/v1/datasets").json()["total"] == 0


def test_decimal_and_duration_are_numbers_as_inputs_and_as_targets(api: httpx.Client) -> None:
    quarters = pa.array([decimal.Decimal(i) / 4 for i in range(ROWS)], pa.decimal128(10, 2))
    waits = pa.array([datetime.timedelta(seconds=3 * i) for i in range(ROWS)])
    content = _parquet(price=quarters, wait=waits, y=pa.array(X * 1.5))
    response = upload(api, content, filename="d.parquet", target="y")
    assert response.status_code == 201, response.text
    kinds = {c["name"]: (c["kind"], c["categories"]) for c in response.json()["columns"]}
    assert kinds == {"price": ("numeric", None), "wait": ("numeric", None)}
    assert response.json()["features"] == 2  # were 2 x (40 categories + 1)

    as_target = _parquet(x=pa.array(X), y=quarters)
    dataset = upload(api, as_target, filename="t.parquet", target="y").json()
    assert (dataset["task"], dataset["classes"]) == ("regression", None)
    seconds = npz_bytes(x=X.reshape(-1, 1), y=np.arange(ROWS).astype("timedelta64[s]"))
    assert upload(api, seconds, filename="s.npz").json()["task"] == "regression"


def test_a_timestamp_input_column_is_refused_with_a_hint(api: httpx.Client) -> None:
    stamps = pa.array([datetime.datetime(2020, 1, 1, i % 24) for i in range(ROWS)])
    content = _parquet(x=pa.array(X), at=stamps, y=pa.array(X))
    assert_problem(
        upload(api, content, filename="d.parquet", target="y"),
        422,
        "column 'at' holds timestamps",
        "seconds since 1970",
    )


def test_a_failed_commit_takes_its_file_away(
    api: httpx.Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails after the file was moved into place, the file does not stay."""
    real_store_file = dataset_writes.store_file
    armed: dict[str, bool] = {}

    def store_then_fail_the_commit(session: Session, *args: Any) -> bool:
        placed = real_store_file(session, *args)
        armed["commit"] = True
        return placed

    def fail_commit(session: Session) -> None:
        if armed.pop("commit", False):
            raise RuntimeError("the commit failed")

    monkeypatch.setattr(dataset_writes, "store_file", store_then_fail_the_commit)
    event.listen(Session, "before_commit", fail_commit)
    try:
        response = upload(api, csv_bytes(customers_frame(rows=60)), target="churned")
    finally:
        event.remove(Session, "before_commit", fail_commit)
    assert response.status_code == 500
    assert _stored_files(settings) == []
    with httpx.Client(base_url=api.base_url) as fresh:  # a 500 closed the connection
        assert fresh.get("/api/v1/datasets").json()["total"] == 0


def test_values_float32_cannot_hold_are_refused_naming_the_column(api: httpx.Client) -> None:
    frame = pd.DataFrame({"x": X, "y": X * 2})
    huge_target = frame.assign(y=frame["y"].where(frame.index != 3, 1e308))
    body = assert_problem(
        upload(api, csv_bytes(huge_target), target="y"), 422, "column 'y'", "float32", "1e+308"
    )
    assert body["errors"][0]["loc"] == ["body", "target"]
    huge_input = frame.assign(x=frame["x"].where(frame.index != 5, -1e39))
    assert_problem(upload(api, csv_bytes(huge_input), target="y"), 422, "column 'x'", "row 6")
    near = frame.assign(x=frame["x"].where(frame.index != 5, 3e38))
    assert upload(api, csv_bytes(near), target="y").status_code == 201


def test_cr_only_line_ends_and_big_endian_arrays_are_read(
    api: httpx.Client, settings: Settings
) -> None:
    old_mac = ("a,b,y\r" + "".join(f"{i},{i % 3},{i * 1.5}\r" for i in range(ROWS))).encode()
    response = upload(api, old_mac, target="y")
    assert response.status_code == 201, response.text
    assert (response.json()["rows"], response.json()["input_columns"]) == (ROWS, ["a", "b"])

    x = np.arange(ROWS * 2, dtype=">f8").reshape(ROWS, 2)
    y = (np.arange(ROWS) % 2).astype(">i4")
    dataset = upload(api, npz_bytes(x=x, y=y), filename="big-endian.npz").json()
    assert (dataset["rows"], dataset["classes"]) == (ROWS, [0, 1])
    path = settings.datasets_dir / f"{dataset['sha256']}.npz"
    frame = read_table(path, "npz", max_unpacked_bytes=1 << 20)
    assert frame["x1"].tolist() == x[:, 1].tolist()  # the numbers, not their bytes swapped


def test_a_full_disk_names_no_server_path(
    api: httpx.Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = str(settings.datasets_dir.resolve() / ".upload-x")

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", where)

    monkeypatch.setattr(dataset_routes, "stream_to_temp", full)
    body = assert_problem(upload(api, b"a,b\n1,2\n", target="b"), 507, "no space left")
    assert str(settings.data_dir.resolve()) not in str(body)
    assert str(settings.data_dir) not in str(body)


def _categorical_frame(columns: int, values: int, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {f"c{i}": [f"v{v}" for v in rng.integers(0, values, rows)] for i in range(columns)}
    )
    frame["narrow"] = rng.choice(["a", "b"], rows)
    frame["y"] = rng.normal(size=rows)
    return frame


def test_a_table_too_wide_once_encoded_is_refused_naming_its_widest_columns(
    settings: Settings,
) -> None:
    with serving(settings, max_features=200) as (api, _):
        wide = _categorical_frame(columns=6, values=60)
        body = assert_problem(
            upload(api, csv_bytes(wide), target="y"), 422, "TUNER_MAX_FEATURES", "limit of 200"
        )
        assert "'c0' (" in body["detail"]
        assert "'narrow'" not in body["detail"]  # only the widest are named
        narrower = wide.drop(columns=["c0", "c1", "c2", "c3"])
        assert upload(api, csv_bytes(narrower), target="y").status_code == 201


def test_a_search_that_would_not_fit_in_memory_is_a_422(api: httpx.Client, engine: Engine) -> None:
    with write_session(engine) as session:
        big = dataset_row()
        big.rows, big.features = 5_000_000, 2_000
        big.columns = [{"name": f"x{i}", "kind": "numeric", "missing": 0} for i in range(2_000)]
        session.add(big)
        session.flush()
        big_id = big.id
    response = api.post(
        "/api/v1/jobs",
        json={"dataset_id": big_id, "search_space": {"units": {"type": "fixed", "value": 8}}},
    )
    body = assert_problem(response, 422, "TUNER_MAX_SEARCH_MEMORY_MB", "5,000,000 rows")
    assert body["errors"][0]["loc"] == ["body", "dataset_id"]


def test_a_csv_of_short_numbers_is_profiled_within_the_stated_memory_limit(
    settings: Settings,
) -> None:
    # 400,000 rows of 40 one-digit columns: a 32 MB file under a 40 MB upload cap, whose
    # parse (16 M values) is far past the profile's limit (4 x the cap) read whole; a few
    # columns at a time it fits.
    lines = [",".join(str((i + j) % 10) for j in range(40)).encode() for i in range(10)]
    content = b",".join(f"c{j}".encode() for j in range(39)) + b",y\n"
    content += b"\n".join(lines * 40_000) + b"\n"
    with serving(settings, max_upload_mb=40) as (api, _):
        response = upload(api, content, target="y")
    assert response.status_code == 201, response.text
    assert (response.json()["rows"], len(response.json()["input_columns"])) == (400_000, 39)


def test_the_upload_form_infers_the_task_unless_told(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()["components"]["schemas"]["Body_upload_dataset"]
    task = schema["properties"]["task"]
    assert (task["enum"][0], task["default"]) == ("infer", "infer")

    rng = np.random.default_rng(5)
    prices = pd.DataFrame({"x": rng.normal(size=300), "price": rng.normal(50, 20, 300).round(1)})
    assert prices["price"].nunique() > 200
    content = csv_bytes(prices)
    assert upload(api, content, target="price", task="infer").json()["task"] == "regression"
    body = assert_problem(
        upload(api, content, target="price", task="classification"), 422, "looks numeric"
    )
    assert body["errors"][0]["loc"] == ["body", "task"]
    insisted = upload(
        api, content, target="price", task="classification", allow_many_classes="true"
    )
    assert insisted.status_code == 201, insisted.text
    assert len(insisted.json()["classes"]) == prices["price"].nunique()


def test_the_dataset_list_holds_summaries_and_jobs_name_their_dataset(
    api: httpx.Client,
) -> None:
    wide = upload_ok(api, _categorical_frame(columns=60, values=3), "y")
    read = api.get(f"/api/v1/datasets/{wide['id']}")
    (summary,) = api.get("/api/v1/datasets").json()["items"]
    assert "columns" not in summary
    assert "missing" not in summary
    assert summary["input_column_count"] == 61
    kept = {k: v for k, v in read.json().items() if k in summary}
    assert summary == {**kept, "input_column_count": 61}
    assert len(api.get("/api/v1/datasets").content) * 10 < len(read.content)

    small = {"units": {"type": "fixed", "value": 8}}
    submitted = api.post("/api/v1/jobs", json={"dataset_id": wide["id"], "search_space": small})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["dataset_name"] == "data.csv"
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["dataset_name"] == "data.csv"
    assert api.get("/api/v1/jobs").json()["items"][0]["dataset_name"] == "data.csv"


BOUNDARY = "hostile-third"


def _slow_upload(url: str, *, declared: int = 1 << 20) -> socket.socket:
    """An upload that sends its headers and the start of its file, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n'
        "Content-Type: text/csv\r\n\r\na,b\n"
    ).encode()
    sock.sendall(
        (
            "POST /api/v1/datasets HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        + head
        + b"1,2\n" * 1000
    )
    return sock


def _answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_slow_uploads_are_bounded_per_key_and_time_out_when_they_stall(
    settings: Settings,
) -> None:
    with serving(settings, max_uploads_per_key=2, upload_stall_s=1.5) as (api, url):
        slow = [_slow_upload(url), _slow_upload(url)]
        time.sleep(0.3)
        busy = upload(api, csv_bytes(customers_frame(rows=60)), target="churned")
        assert_problem(busy, 429, "TUNER_MAX_UPLOADS_PER_KEY=2")
        assert busy.headers["Retry-After"]
        started = time.monotonic()
        for sock in slow:
            answer = _answer(sock, timeout=10)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            sock.close()
        assert time.monotonic() - started < 5
        # Their slots are free again, and nothing of them stayed on disk.
        assert upload_ok(api, customers_frame(rows=60), "churned")["rows"] == 60
        assert [p for p in _stored_files(settings) if p.startswith(".")] == []


def _spooled_to_disk() -> int:
    """Anonymous temp files this process has open: where a file part goes past the spool."""
    fds = Path("/proc/self/fd")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(fd.readlink().name)
        except OSError:  # closed meanwhile
            continue
    return sum(1 for link in links if link.startswith("#") and link.endswith("(deleted)"))


def test_a_slow_upload_keeps_little_of_its_file_in_memory(settings: Settings) -> None:
    with serving(settings, upload_stall_s=10) as (_, url):  # the API runs in this process
        before = _spooled_to_disk()
        sock = _slow_upload(url, declared=4 << 20)
        sock.sendall(b"1,2\n" * 50_000)  # 200 KB of the file, then nothing for a while
        deadline = time.monotonic() + 10
        while _spooled_to_disk() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        # Past 64 KiB the part is on disk, not held in memory while the client dawdles.
        assert _spooled_to_disk() == before + 1
        sock.close()


def test_uploads_in_all_are_bounded(settings: Settings) -> None:
    with serving(settings, max_uploads=1, upload_stall_s=5) as (api, url):
        sock = _slow_upload(url)
        time.sleep(0.3)
        busy = upload(api, csv_bytes(customers_frame(rows=60)), target="churned")
        assert_problem(busy, 429, "TUNER_MAX_UPLOADS=1")
        sock.close()


def test_the_existing_dataset_is_kept_when_a_datasets_file_is_refused(
    api: httpx.Client, settings: Settings
) -> None:
    stored = upload_ok(api, customers_frame(rows=60), "churned")
    refused = npz_bytes(x=X.reshape(-1, 1), y=np.arange(ROWS).astype("datetime64[D]"))
    assert upload(api, refused, filename="d.npz").status_code == 422
    assert _stored_files(settings) == [f"{stored['sha256']}.csv"]
    assert api.get(f"/api/v1/datasets/{stored['id']}").json() == stored
