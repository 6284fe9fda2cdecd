"""The upload cap is counted on the stream, before Starlette spools the file part."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from app.settings import Settings
from tests.conftest import LiveServer
from tests.factories import assert_problem

BOUNDARY = "tuner-test-boundary"
CHUNK = b"1,2\n" * 16384  # 64 KiB


def _chunked_multipart() -> Iterator[bytes]:
    """A 2 MB file part, then a 2 MB text field, with no Content-Length (chunked).

    Were the body parsed to its end, Starlette would refuse the oversized text
    field (400). A 413 shows the cap cut the stream off inside the file part.
    """
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\na,b\n"
    ).encode()
    yield from [CHUNK] * 32
    yield f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\n'.encode()
    yield from [b"x" * 65536] * 32
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_a_streamed_upload_over_the_limit_is_refused_without_spooling_it(
    settings: Settings,
) -> None:
    small = settings.model_copy(update={"max_upload_mb": 1})
    with LiveServer(small) as live, httpx.Client(base_url=live.url, timeout=60) as api:
        response = api.post(
            "/api/v1/datasets",
            content=_chunked_multipart(),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert_problem(response, 413, "larger than the limit of 1 mb")
        assert api.get("/api/v1/datasets").json()["total"] == 0
    # Nothing of it stays on disk: no dataset, no half-written temp file.
    assert list(small.datasets_dir.iterdir()) == []
