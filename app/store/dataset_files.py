"""Datasets share one file per content hash: uploading and deleting it, serialised.

A delete counted the rows left on a hash, and unlinked the file, while an upload of
the same bytes had found the file in place but not yet committed its row: the upload
answered 201 and its file was gone. Both now hold a lock on the hash, inside their
transaction, across the check of the file and the change to the rows:

- PostgreSQL: `pg_advisory_xact_lock` on the hash, released at commit or rollback.
- SQLite: the write transaction itself (BEGIN IMMEDIATE, app.store.db.for_writing):
  one writer at a time for the whole database.

A delete cannot unlink the file before it commits (a failed commit would leave a row
without its file) nor after (the lock is gone by then): under the lock it renames the
file aside, and only once committed unlinks that copy. An upload that comes after the
rename finds no file and puts its own in place.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.store.models import Dataset
from app.store.uploads import StoredUpload, keep


def lock_dataset_file(session: Session, sha256: str) -> None:
    """Hold the lock on `sha256`'s file until the session's transaction ends."""
    connection = session.connection()  # on SQLite this BEGINs, taking the write lock
    if connection.dialect.name == "postgresql":
        key = int(sha256[:16], 16)
        key -= (1 << 64) if key >= (1 << 63) else 0  # a signed bigint
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def store_file(session: Session, upload: StoredUpload, final: Path) -> bool:
    """Put an upload's bytes at `final` (or keep the copy there), under the hash's lock;
    whether this upload put the file there."""
    lock_dataset_file(session, upload.sha256)
    return keep(upload, final)


def discard_unclaimed(session: Session, sha256: str, final: Path) -> None:
    """After an upload that put its file in place but did not commit its row: the file
    goes, under the lock, unless a row claims it (the same bytes, uploaded meanwhile)."""
    lock_dataset_file(session, sha256)
    claimed = session.scalar(select(func.count(Dataset.id)).where(Dataset.sha256 == sha256))
    if not claimed:
        final.unlink(missing_ok=True)


def set_aside(final: Path) -> Path | None:
    """Move a file no row shares any more out of the way, under the lock: its path then."""
    aside = final.with_name(f".deleting-{uuid.uuid4().hex}-{final.name}")
    try:
        os.replace(final, aside)
    except FileNotFoundError:
        return None
    return aside


def put_back(aside: Path | None, final: Path) -> None:
    """After a delete that did not commit: the file returns (an upload may have put the
    same bytes back meanwhile; content-addressed, either copy will do)."""
    if aside is None:
        return
    if final.exists():
        aside.unlink(missing_ok=True)
    else:
        os.replace(aside, final)
