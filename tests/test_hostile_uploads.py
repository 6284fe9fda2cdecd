"""Hostile uploads: small files that cost much CPU or memory, and a delete racing an upload.

Each refusal is a 4xx problem+json, comes within a bounded time, and leaves a dataset
stored before it readable.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from app.errors import ProblemError
from app.search.profiler import ClientGone, ProfileLimits, ProfileRequest, profile_upload
from app.search.table_readers import read_table
from app.settings import Settings
from app.store.uploads import dataset_path
from tests.conftest import LiveServer
from tests.factories import (
    assert_problem,
    csv_bytes,
    customers_frame,
    parquet_bytes,
    submit,
    upload,
    upload_ok,
)


def _refused_quickly(response_of: Any, status: int, *needles: str, within_s: float = 5) -> None:
    started = time.monotonic()
    response = response_of()
    elapsed = time.monotonic() - started
    assert_problem(response, status, *needles)
    assert elapsed < within_s, f"refused after {elapsed:.1f} s"


def _dataset_readable(api: httpx.Client, settings: Settings, dataset: dict[str, Any]) -> None:
    assert api.get(f"/api/v1/datasets/{dataset['id']}").json() == dataset
    path = dataset_path(settings.datasets_dir, dataset["sha256"], dataset["format"])
    frame = read_table(path, dataset["format"], max_unpacked_bytes=1 << 30)
    assert len(frame) == dataset["rows"] + dataset.get("rows_dropped", 0)


def _still_readable(api: httpx.Client, settings: Settings, stored: dict[str, Any]) -> None:
    """The dataset and the job stored before the hostile request are intact and usable."""
    dataset = {k: v for k, v in stored.items() if k != "job"}
    _dataset_readable(api, settings, dataset)
    assert api.get(f"/api/v1/jobs/{stored['job']['id']}").json()["spec"] == stored["job"]["spec"]
    assert submit(api, dataset["id"])["status"] == "queued"  # the dataset still takes jobs


@pytest.fixture
def stored(api: httpx.Client) -> dict[str, Any]:
    """A dataset, and a job on it, stored before the hostile request."""
    dataset = upload_ok(api, customers_frame(rows=60), "churned")
    return {**dataset, "job": submit(api, dataset["id"], tuner={"seed": 7})}


def test_a_header_of_repeated_names_is_refused_from_its_first_line(
    api: httpx.Client, settings: Settings, stored: dict[str, Any]
) -> None:
    # 80,000 names in a 160 KB header: pandas' renaming of duplicates took 12 s of CPU.
    wide = ("y," + ",".join(["a"] * 80_000) + "\n" + "1,2\n" * 10).encode()
    _refused_quickly(lambda: upload(api, wide, target="y"), 422, "80001 columns", "limit of 2000")
    # Under the width limit the names are still checked before the parse.
    twins = ("y," + ",".join(["a"] * 1_999) + "\n" + "1," * 1_999 + "2\n").encode()
    _refused_quickly(lambda: upload(api, twins, target="y"), 422, "'a' (1999 times)")
    _still_readable(api, settings, stored)


def _npz_with_header(shape: tuple[int, ...], payload: bytes) -> bytes:
    """An NPZ whose x.npy header declares `shape` whatever data follows it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": shape}
            )
            member.write(payload)
        with archive.open("y.npy", "w") as member:
            np.save(member, np.zeros(2))
    return buffer.getvalue()


def test_an_npy_header_claiming_billions_of_rows_is_refused_before_allocating(
    api: httpx.Client, settings: Settings, stored: dict[str, Any]
) -> None:
    # 32 GB declared (numpy allocated it and answered 500): over the row limit.
    lying = _npz_with_header((4_000_000_000, 1), np.zeros(2).tobytes())
    _refused_quickly(lambda: upload(api, lying, filename="l.npz"), 422, "4000000000 rows")
    # 8 GB declared, within the row and column limits: over the unpacked-bytes cap.
    wide = _npz_with_header((1_000_000, 1_000), np.zeros(2).tobytes())
    _refused_quickly(
        lambda: upload(api, wide, filename="w.npz"), 422, "declares shape [1000000, 1000]"
    )
    truncated = _npz_with_header((4, 1), np.zeros(2).tobytes())
    _refused_quickly(lambda: upload(api, truncated, filename="t.npz"), 422, "truncated")
    _still_readable(api, settings, stored)


def _zeros_bomb(path: Path, rows: int, columns: int) -> Path:
    """An NPZ of float64 zeros, honest about its size, that compresses about 250 to 1."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (rows, columns)}
            )
            chunk = bytes(1 << 20)
            left = rows * columns * 8
            while left:
                member.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        with archive.open("y.npy", "w") as member:
            np.save(member, np.arange(rows) % 2)
    return path


class PeakRss:
    """This process's peak resident memory while in the block (the API runs in it)."""

    def __init__(self) -> None:
        self.peak = self.start = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmRSS"))

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / (1 << 20)


def test_an_npz_bomb_is_unpacked_outside_the_api_and_within_a_memory_bound(
    api: httpx.Client, settings: Settings, stored: dict[str, Any], tmp_path: Path
) -> None:
    # 1.5 GB of zeros in a 6 MB upload: under the row, column and unpacked-bytes caps at the
    # default 200 MB upload limit, over the memory a profile may take (4 x that limit).
    bomb = _zeros_bomb(tmp_path / "bomb.npz", rows=750_000, columns=250)
    with PeakRss() as rss, bomb.open("rb") as content:
        _refused_quickly(
            lambda: api.post("/api/v1/datasets", files={"file": ("bomb.npz", content)}),
            422,
            "memory limit",
            within_s=30,
        )
    assert rss.growth_mb < 200, f"the API grew by {rss.growth_mb:.0f} MB"
    _still_readable(api, settings, stored)


def test_profiling_stops_at_its_time_limit_and_when_the_client_goes(tmp_path: Path) -> None:
    path = tmp_path / "slow.csv"
    path.write_bytes(csv_bytes(customers_frame(rows=200_000)))
    limits = ProfileLimits(
        max_rows=1_000_000, max_columns=10, max_unpacked_bytes=1 << 30, memory_bytes=1 << 30
    )
    request = ProfileRequest(path, "csv", "churned")
    started = time.monotonic()
    with pytest.raises(ProblemError, match="took longer than the limit of 0.2 s"):
        profile_upload(request, _with(limits, timeout_s=0.2))
    with pytest.raises(ClientGone):
        profile_upload(request, limits, cancelled=lambda: True)
    assert time.monotonic() - started < 5
    # Given the time, the same file profiles.
    assert profile_upload(request, limits).rows == 200_000


def _with(limits: ProfileLimits, **changes: Any) -> ProfileLimits:
    return ProfileLimits(**{**limits.__dict__, **changes})


@pytest.mark.parametrize(
    ("header", "target", "twin"),
    [("a,a,y", "y", "'a' (2 times)"), ("y,a,y", "y", "'y' (2 times)")],
)
def test_duplicate_column_names_are_refused_naming_them(
    api: httpx.Client, settings: Settings, stored: dict[str, Any], header: str, target: str, twin
) -> None:
    rows = "".join(f"{i % 2},{i},{i % 2}\n" for i in range(40))
    content = f"{header}\n{rows}".encode()
    _refused_quickly(lambda: upload(api, content, target=target), 422, "must be unique", twin)
    _still_readable(api, settings, stored)


CAFE = "café,churned\n" + "1,yes\n2,no\n" * 10


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (CAFE.encode("utf-16"), ("utf-16 le", "not utf-8")),
        (CAFE.encode("utf-16-be"), ("utf-16 be", "without a byte-order mark")),
        (CAFE.encode("utf-32"), ("utf-32",)),
        (CAFE.encode("latin-1"), ("not utf-8", "0xe9 at offset 3 (line 1)", "latin-1")),
        (("x,churned\n" * 1 + "1,yes\n" * 300_000 + CAFE).encode("latin-1"), ("line 300002",)),
    ],
)
def test_a_csv_not_in_utf8_is_refused_naming_its_encoding(
    api: httpx.Client, settings: Settings, stored: dict[str, Any], content: bytes, needles: tuple
) -> None:
    _refused_quickly(lambda: upload(api, content, target="churned"), 422, *needles)
    _still_readable(api, settings, stored)


def test_a_utf8_csv_with_a_byte_order_mark_is_read(api: httpx.Client) -> None:
    body = upload(api, ("\ufeff" + CAFE).encode(), target="churned").json()
    assert [c["name"] for c in body["columns"]] == ["café"]


@pytest.mark.parametrize("target", ["labels", "y"])
def test_a_list_valued_parquet_column_is_refused_naming_it(
    api: httpx.Client, settings: Settings, stored: dict[str, Any], target: str
) -> None:
    frame = pd.DataFrame({"y": [0, 1] * 10, "labels": [[1, 2], [3]] * 10})
    content = parquet_bytes(frame)
    _refused_quickly(
        lambda: upload(api, content, filename="t.parquet", target=target),
        422,
        "column 'labels'",
        "nested",
    )
    _still_readable(api, settings, stored)


ROUNDS = 30


def _concurrently(*calls: Any) -> Iterator[Any]:
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return iter(results)


def test_an_upload_racing_a_delete_of_the_same_bytes_keeps_its_file(
    settings: Settings, tmp_path: Path
) -> None:
    content = csv_bytes(customers_frame(rows=60))
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30) as deleter,
        httpx.Client(base_url=live.url, timeout=30) as uploader,
    ):
        previous = upload_ok(uploader, customers_frame(rows=60), "churned")
        for round_ in range(ROUNDS):
            # The delete starts a little later each round, sweeping the upload's steps.
            delay = (round_ % 15) * 0.002

            def delete(dataset_id: str = previous["id"], delay: float = delay) -> httpx.Response:
                time.sleep(delay)
                return deleter.delete(f"/api/v1/datasets/{dataset_id}")

            # The same bytes with the other target: a new dataset sharing the file (the same
            # target would be the dataset being deleted, answered 200 as it was).
            target = ("plan", "churned")[round_ % 2]
            deleted, uploaded = _concurrently(
                delete, lambda target=target: upload(uploader, content, target=target)
            )
            assert deleted.status_code == 204, deleted.text
            assert uploaded.status_code == 201, uploaded.text
            previous = uploaded.json()
            path = dataset_path(settings.datasets_dir, previous["sha256"], "csv")
            assert path.exists(), f"round {round_}: the 201's file is gone"
            _dataset_readable(uploader, settings, previous)
        assert uploader.delete(f"/api/v1/datasets/{previous['id']}").status_code == 204
    assert list(settings.datasets_dir.iterdir()) == []
