"""Dataset upload, listing, reading and deletion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from sqlalchemy import func, select

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from app.api.problems import problem_responses
from app.errors import InvalidInput, ProblemError
from app.schemas import MAX_OFFSET, DatasetRead, Page
from app.search.datasets import NPZ_TARGET, DatasetError, detect_format
from app.search.profiler import ProfileLimits, profile_upload
from app.store.dataset_files import lock_dataset_file, put_back, set_aside, store_file
from app.store.db import storable
from app.store.models import Dataset, Job
from app.store.reads import dataset_page, get_dataset
from app.store.uploads import dataset_path, stream_to_temp

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetRead, responses=problem_responses(400, 413))
def upload_dataset(
    request: Request,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File(description="CSV, Parquet or NPZ (arrays x and y)")],
    target: Annotated[str | None, Form(description="target column (NPZ: y)")] = None,
    name: Annotated[str | None, Form(max_length=255)] = None,
    task: Annotated[Literal["classification", "regression"] | None, Form()] = None,
) -> DatasetRead:
    """Upload a table and profile it: columns, missing values, task, seeded unit range."""
    if name is not None and not storable(name):
        raise InvalidInput("name must not contain a NUL character", field=["body", "name"])
    max_bytes = settings.max_upload_mb << 20
    upload = stream_to_temp(file.file, settings.datasets_dir, max_bytes=max_bytes)
    try:
        if upload.size == 0:
            raise DatasetError("the file is empty")
        fmt = detect_format(file.filename, upload.head)
        if fmt == "npz":
            target = target or NPZ_TARGET
        elif not target:
            raise DatasetError("name the target column in the `target` form field", field="target")
        limits = ProfileLimits.for_upload_cap(
            max_bytes, max_rows=settings.max_rows, max_columns=settings.max_columns
        )
        profile = profile_upload(
            upload.temp_path, fmt, target, task, limits, cancelled=_disconnected(request)
        )
        dataset = Dataset(
            owner=owner,
            name=name or _name_from(file.filename),
            format=fmt,
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
        # The file and the row that claims it land under one lock (app.store.dataset_files):
        # a concurrent delete of the same bytes cannot take the file from under this 201.
        with uow as session:
            store_file(session, upload, dataset_path(settings.datasets_dir, upload.sha256, fmt))
            session.add(dataset)
    finally:
        upload.temp_path.unlink(missing_ok=True)
    return DatasetRead.of(dataset)


def _disconnected(request: Request) -> Callable[[], bool]:
    """Whether the client went away, asked from the route's worker thread."""
    return lambda: anyio.from_thread.run(request.is_disconnected)


def _name_from(filename: str | None) -> str:
    name = Path(filename or "").name.replace("\x00", "")[:255]
    return name or "dataset"


@router.get("", response_model=Page[DatasetRead])
def list_datasets(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[DatasetRead]:
    """List datasets, newest first."""
    rows, total = dataset_page(session, owner, limit=limit, offset=offset)
    return Page(items=[DatasetRead.of(d) for d in rows], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=problem_responses(404))
def read_dataset(session: SessionDep, owner: OwnerDep, dataset_id: str) -> DatasetRead:
    """One dataset with its column profile."""
    return DatasetRead.of(get_dataset(session, dataset_id, owner))


@router.delete("/{dataset_id}", status_code=204, responses=problem_responses(404, 409))
def delete_dataset(
    uow: UnitOfWorkDep, settings: SettingsDep, owner: OwnerDep, dataset_id: str
) -> Response:
    """Delete a dataset no job refers to (409 otherwise: its jobs' results would be orphaned)."""
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
                final = dataset_path(settings.datasets_dir, dataset.sha256, dataset.format)
                aside = set_aside(final)
    except BaseException:
        if final is not None:
            put_back(aside, final)
        raise
    if aside is not None:
        aside.unlink(missing_ok=True)
    return Response(status_code=204)
