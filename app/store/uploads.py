"""Storing an upload: streamed to disk with a size cap, hashed, and kept content-addressed."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import ProblemError

CHUNK = 1 << 20
HEAD_BYTES = 8192


@dataclass
class StoredUpload:
    temp_path: Path
    sha256: str
    size: int
    head: bytes


def stream_to_temp(source: BinaryIO, directory: Path, *, max_bytes: int) -> StoredUpload:
    """Copy `source` into a temp file under `directory`; 413 once it passes `max_bytes`."""
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".upload-{uuid.uuid4().hex}"
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        with temp.open("wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ProblemError(
                        413,
                        f"the upload is larger than the limit of {max_bytes // (1 << 20)} MB",
                        title="Upload too large",
                    )
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return StoredUpload(temp_path=temp, sha256=digest.hexdigest(), size=size, head=head)


def dataset_path(datasets_dir: Path, sha256: str, fmt: str) -> Path:
    """Where a dataset's bytes live: named by content hash, never by anything the user typed."""
    return datasets_dir / f"{sha256}.{fmt}"


def keep(upload: StoredUpload, final: Path) -> bool:
    """Move the upload to `final`, or drop it where the same bytes are there already;
    whether it was moved (then the file is this upload's own until its row commits)."""
    if final.exists():
        upload.temp_path.unlink(missing_ok=True)
        return False
    os.replace(upload.temp_path, final)
    return True
