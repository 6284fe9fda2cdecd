"""Dataset upload, listing, reading and deletion."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from sqlalchemy import func, select

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from app.api.problems import problem_responses
from app.api.upload_gate import UploadRoute
from app.errors import InvalidInput, ProblemError
from app.schemas import MAX_OFFSET, DatasetRead, DatasetSummary, Page
from app.search.datasets import NPZ_TARGET, DatasetError, detect_format
from app.search.profiler import ProfileLimits, ProfileRequest, profile_upload
from app.settings import Settings
from app.store.dataset_files import (
    discard_unclaimed,
    lock_dataset_file,
    put_back,
    set_aside,
    store_file,
)
from app.store.db import storable
from app.store.models import Dataset, Job
from app.store.reads import dataset_page, get_dataset, same_upload
from app.store.unit_of_work import UnitOfWork
from app.store.uploads import StoredUpload, dataset_path, stream_to_temp

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/datasets", tags=["datasets"], route_class=UploadRoute)

Task = Literal["infer", "classification", "regression"]


@router.post(
    "",
    status_code=201,
    response_model=DatasetRead,
    responses={
        200: {"model": DatasetRead, "description": "The same file and target, uploaded before"},
        **problem_responses(400, 413),
        408: {**problem_responses(400)[400], "description": "The upload stalled"},
        429: {
            **problem_responses(429)[429],
            "description": "Too many uploads in progress, for this API key or in all",
        },
    },
)
def upload_dataset(
    request: Request,
    response: Response,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File(description="CSV, Parquet or NPZ (arrays x and y)")],
    target: Annotated[str | None, Form(description="target column (NPZ: y)")] = None,
    name: Annotated[str | None, Form(max_length=255)] = None,
    task: Annotated[
        Task,
        Form(
            description="infer (the default): classification for text, booleans or a few "
            "whole numbers; regression otherwise"
        ),
    ] = "infer",
    allow_many_classes: Annotated[
        bool,
        Form(
            description="classify a target whose classes are mostly seen once or twice "
            "(refused otherwise: it looks numeric, or like an identifier)"
        ),
    ] = False,
) -> DatasetRead:
    """Upload a table and profile it: columns, missing values, task, seeded unit range.

    201 with a new dataset; 200 with the existing one when the caller uploaded the same
    file with the same target (and task) before: it keeps its name."""
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
            max_bytes,
            max_rows=settings.max_rows,
            max_columns=settings.max_columns,
            memory_bytes=(settings.profile_memory_mb or 0) << 20,
            max_features=settings.max_features,
        )
        asked = ProfileRequest(
            upload.temp_path, fmt, target, None if task == "infer" else task, allow_many_classes
        )
        profile = profile_upload(asked, limits, cancelled=_disconnected(request))
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
        dataset = _store(uow, settings, upload, dataset, response)
    finally:
        upload.temp_path.unlink(missing_ok=True)
    return DatasetRead.of(dataset)


def _store(
    uow: UnitOfWork, settings: Settings, upload: StoredUpload, dataset: Dataset, response: Response
) -> Dataset:
    """The new dataset's row and file, or the caller's dataset of the same upload (200).

    The file and the row that claims it land under one lock (app.store.dataset_files): a
    concurrent delete of the same bytes cannot take the file from under this 201, and two
    uploads of the same bytes find each other. The row is written before the file is moved
    into place, and a file moved there by an upload that then failed is taken away again:
    a failed upload keeps nothing on disk, whatever failed."""
    final = dataset_path(settings.datasets_dir, upload.sha256, dataset.format)
    placed = False
    try:
        with uow as session:
            lock_dataset_file(session, upload.sha256)
            existing = same_upload(
                session,
                dataset.owner,
                sha256=upload.sha256,
                target=dataset.target,
                task=dataset.task,
            )
            if existing is not None and final.exists():
                response.status_code = 200
                return existing
            session.add(dataset)
            session.flush()
            placed = store_file(session, upload, final)
    except BaseException:
        if placed:
            _discard(uow, upload.sha256, final)
        raise
    return dataset


def _discard(uow: UnitOfWork, sha256: str, final: Path) -> None:
    try:
        with uow as session:
            discard_unclaimed(session, sha256, final)
    except Exception:  # the upload's own error is the one to answer; this one is logged
        logger.exception("a failed upload's file could not be removed", extra={"path": str(final)})


def _disconnected(request: Request) -> Callable[[], bool]:
    """Whether the client went away, asked from the route's worker thread."""
    return lambda: anyio.from_thread.run(request.is_disconnected)


def _name_from(filename: str | None) -> str:
    name = Path(filename or "").name.replace("\x00", "")[:255]
    return name or "dataset"


@router.get("", response_model=Page[DatasetSummary])
def list_datasets(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[DatasetSummary]:
    """List datasets, newest first, as summaries: the column profile is on GET /datasets/{id}."""
    rows, total = dataset_page(session, owner, limit=limit, offset=offset)
    items = [DatasetSummary.of(row) for row in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


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
