"""A CSV's encoding and header, checked before pandas parses the rest of the file.

pandas renames duplicate column names one by one, and each rename rescans the names
already taken: a header of a few hundred KB of repeated names costs seconds of CPU
before any limit could be checked on the parsed frame. The csv module reads the first
record in linear time, so the width and the uniqueness of the names are checked here.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from pathlib import Path

from app.errors import DatasetError

# The longest header read: 2,000 columns of 500-character names. Past it, the first
# record is not a header anyone wrote by hand or by a tool.
MAX_HEADER_CHARS = 1 << 20
UTF8_CHUNK = 1 << 20
BOMS = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF32_LE, "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "UTF-32 BE"),
    (codecs.BOM_UTF16_LE, "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "UTF-16 BE"),
)
SAVE_AS_UTF8 = "save it as UTF-8 (with or without a byte-order mark) and upload it again"


def wide_encoding(head: bytes) -> str | None:
    """The UTF-16/32 encoding `head` is in, by its byte-order mark or its NUL pattern."""
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    sample = head[:1024]
    if len(sample) >= 4 and b"\x00" in sample:
        # ASCII text in UTF-16 has a NUL in every other byte; a binary file has no such rhythm.
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) >= 0.9 * len(odd) and not even.count(0):
            return "UTF-16 LE (without a byte-order mark)"
        if even.count(0) >= 0.9 * len(even) and not odd.count(0):
            return "UTF-16 BE (without a byte-order mark)"
    return None


def refuse_wide_encoding(head: bytes) -> None:
    found = wide_encoding(head)
    if found is not None:
        raise DatasetError(f"the CSV file is {found} text, not UTF-8; {SAVE_AS_UTF8}")


def check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8, naming where and what it looks like instead.

    pandas reports a decoding error relative to the chunk it was reading, not the file,
    so the whole file is decoded here first, incrementally (linear, bounded memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with path.open("rb") as raw:
        while chunk := raw.read(UTF8_CHUNK):
            pending = decoder.getstate()[0]  # an unfinished character from the last chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset - len(pending) + exc.start
                line += exc.object[: exc.start].count(b"\n")
                raise DatasetError(_not_utf8(chunk, exc, bad, line)) from exc
            offset += len(chunk)
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"the CSV file is not UTF-8 text: it ends inside a multi-byte character; "
                f"{SAVE_AS_UTF8}"
            ) from exc


def _not_utf8(chunk: bytes, exc: UnicodeDecodeError, at: int, line: int) -> str:
    byte = exc.object[exc.start] if exc.start < len(exc.object) else None
    what = f"byte 0x{byte:02x}" if byte is not None else "a byte"
    guess = (
        "it looks like Latin-1 (ISO-8859-1) or Windows-1252"
        if all(b != 0 for b in chunk[:UTF8_CHUNK])
        else "it holds NUL bytes"
    )
    return (
        f"the CSV file is not UTF-8 text: {what} at offset {at} (line {line}) is not valid "
        f"UTF-8 ({exc.reason}); {guess}: {SAVE_AS_UTF8}"
    )


def header_names(path: Path, encoding: str) -> list[str]:
    """The first non-blank record, as pandas (skipinitialspace, blank lines skipped) reads it."""
    with path.open("r", encoding=encoding, newline="") as text:
        head = text.read(MAX_HEADER_CHARS + 1)
    # Universal newlines, untranslated (as the file was opened): a file saved with CR-only
    # line ends (classic Mac OS) is one line to StringIO's default "\n" split.
    stream = io.StringIO(head, newline="")
    try:
        for record in csv.reader(stream, skipinitialspace=True, strict=False):
            if record:
                break
        else:
            return []
    except csv.Error as exc:
        raise DatasetError(f"malformed CSV header: {exc}") from exc
    if len(head) > MAX_HEADER_CHARS and stream.tell() >= len(head):
        raise DatasetError(f"the CSV header is longer than {MAX_HEADER_CHARS} characters")
    return record


def _count_records(path: Path, encoding: str) -> int:
    """Data records after the header, blank lines skipped as pandas skips them."""
    with path.open("r", encoding=encoding, newline="") as text:
        records = sum(1 for record in csv.reader(text, strict=False) if record)
    return max(records - 1, 0)


def check_header(
    path: Path,
    names: list[str],
    encoding: str,
    *,
    max_columns: int | None,
    max_rows: int | None,
) -> None:
    if max_columns is not None and len(names) > max_columns:
        # The row limit is named first, as it is for a parsed table; counting records with
        # the csv module is linear, where pandas' handling of a wide header need not be.
        rows = _count_records(path, encoding) if max_rows is not None else 0
        if max_rows is not None and rows > max_rows:
            raise DatasetError(f"{rows} rows is over the limit of {max_rows}")
        raise DatasetError(f"{len(names)} columns is over the limit of {max_columns}")
    # pandas names an empty header cell "Unnamed: <position>": those never collide.
    counts = Counter(name for name in names if name != "")
    twins = [(name, n) for name, n in counts.items() if n > 1]
    if twins:
        shown = ", ".join(f"{name!r} ({n} times)" for name, n in twins[:10])
        more = f" and {len(twins) - 10} more" if len(twins) > 10 else ""
        raise DatasetError(f"column names must be unique; duplicated: {shown}{more}")


def csv_encoding(path: Path, *, max_columns: int | None, max_rows: int | None = None) -> str:
    """The encoding pandas should read `path` with, once its encoding and header are checked."""
    with path.open("rb") as raw:
        head = raw.read(4096)
    refuse_wide_encoding(head)
    check_utf8(path)
    encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    names = header_names(path, encoding)
    check_header(path, names, encoding, max_columns=max_columns, max_rows=max_rows)
    return encoding
