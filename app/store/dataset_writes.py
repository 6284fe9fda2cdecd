"""The API's writes to the datasets table, with the one file per content hash they share
(app.store.dataset_files): add an upload's dataset, delete one no job refers to.

A dataset's row and its file change together, and a file is only ever moved once the row
is decided: the transaction cannot hold the file, so each function here is handed the
route's unit of work (app.store.unit_of_work) and enters it itself, to undo its file
change when the transaction fails, the commit included. Neither commits any other way."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import func, select

from app.errors import ProblemError
from app.search.table_profiles import Profile
from app.store.dataset_files import (
    discard_unclaimed,
    lock_dataset_file,
    put_back,
    set_aside,
    store_file,
)
from app.store.models import Dataset, Job
from app.store.reads import get_dataset, same_upload
from app.store.unit_of_work import UnitOfWork
from app.store.uploads import StoredUpload, dataset_path

logger = logging.getLogger(__name__)


def add_dataset(
    *,
    uow: UnitOfWork,
    datasets_dir: Path,
    upload: StoredUpload,
    owner: str | None,
    name: str,
    file_format: str,
    target: str,
    profile: Profile,
) -> tuple[Dataset, bool]:
    """The new dataset's row and file, or the caller's dataset of the same upload: the
    dataset, and whether it is new.

    The file and the row that claims it land under one lock (app.store.dataset_files): a
    concurrent delete of the same bytes cannot take the file from under a new dataset,
    and two uploads of the same bytes find each other. The row is written before the file
    is moved into place, and a file moved there by an upload that then failed is taken
    away again: a failed upload keeps nothing on disk, whatever failed."""
    final = dataset_path(datasets_dir, upload.sha256, file_format)
    placed = False
    try:
        with uow as session:
            lock_dataset_file(session, upload.sha256)
            existing = same_upload(
                session, owner, sha256=upload.sha256, target=target, task=profile.task
            )
            if existing is not None and final.exists():
                return existing, False
            dataset = Dataset(
                owner=owner,
                name=name,
                format=file_format,
                sha256=upload.sha256,
                size_bytes=upload.size,
                rows=profile.rows,
                rows_dropped=profile.rows_dropped,
                target=target,
                task=profile.task,
                columns=profile.columns,
                classes=profile.classes,
                features=profile.features,
            )
            session.add(dataset)
            session.flush()
            placed = store_file(session, upload, final)
    except BaseException:
        if placed:
            _discard(uow, upload.sha256, final)
        raise
    return dataset, True


def _discard(uow: UnitOfWork, sha256: str, final: Path) -> None:
    try:
        with uow as session:
            discard_unclaimed(session, sha256, final)
    except Exception:  # the upload's own error is the one to answer; this one is logged
        logger.exception("a failed upload's file could not be removed", extra={"path": str(final)})


def delete_unused_dataset(
    *, uow: UnitOfWork, datasets_dir: Path, dataset_id: str, owner: str | None
) -> None:
    """Delete a dataset no job refers to (a 409 otherwise: its jobs' results would be
    orphaned), and its file when no other dataset shares it. The file is set aside under
    the hash's lock, put back if the transaction fails, and unlinked once committed."""
    aside: Path | None = None
    final: Path | None = None
    try:
        with uow as session:
            dataset = get_dataset(session, dataset_id, owner)
            # Not filtered by owner: a job can only be submitted on its owner's dataset, and
            # the foreign key would refuse the delete whoever's job it was.
            jobs = (
                session.scalar(select(func.count(Job.id)).where(Job.dataset_id == dataset_id)) or 0
            )
            if jobs:
                raise ProblemError(
                    409, f"dataset {dataset_id!r} is used by {jobs} job(s)", title="Dataset in use"
                )
            # Held to the commit: an upload of the same bytes waits, then finds no file.
            lock_dataset_file(session, dataset.sha256)
            session.delete(dataset)
            session.flush()
            # Every owner's datasets count here: identical uploads share one file on disk.
            shared = session.scalar(
                select(func.count(Dataset.id)).where(Dataset.sha256 == dataset.sha256)
            )
            if not shared:
                final = dataset_path(datasets_dir, dataset.sha256, dataset.format)
                aside = set_aside(final)
    except BaseException:
        if final is not None:
            put_back(aside, final)
        raise
    if aside is not None:
        aside.unlink(missing_ok=True)
