"""Dataset upload, listing, reading and deletion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.api.auth import OwnerDep, get_owned, owned
from app.api.deps import SessionDep, SettingsDep, WriteSessionDep
from app.api.problems import problem_responses
from app.errors import InvalidInput, NotFound, ProblemError
from app.schemas import MAX_OFFSET, DatasetRead, Page
from app.search.datasets import NPZ_TARGET, DatasetError, detect_format, profile_frame, read_table
from app.store.db import storable
from app.store.models import Dataset, Job
from app.store.uploads import dataset_path, keep, stream_to_temp

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetRead, responses=problem_responses(400, 413))
def upload_dataset(
    session: WriteSessionDep,
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
        frame = read_table(upload.temp_path, fmt, max_unpacked_bytes=8 * max_bytes)
        if len(frame) > settings.max_rows:
            raise DatasetError(f"{len(frame)} rows is over the limit of {settings.max_rows}")
        if frame.shape[1] > settings.max_columns:
            raise DatasetError(
                f"{frame.shape[1]} columns is over the limit of {settings.max_columns}"
            )
        profile = profile_frame(frame, target, task)
        keep(upload, dataset_path(settings.datasets_dir, upload.sha256, fmt))
    finally:
        upload.temp_path.unlink(missing_ok=True)

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
    with session.begin():
        session.add(dataset)
    return DatasetRead.of(dataset)


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
    total = session.scalar(owned(select(func.count(Dataset.id)), Dataset, owner)) or 0
    rows = session.scalars(
        owned(select(Dataset), Dataset, owner)
        .order_by(Dataset.created_at.desc(), Dataset.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return Page(items=[DatasetRead.of(d) for d in rows], total=total, limit=limit, offset=offset)


def get_dataset_or_404(session: Session, dataset_id: str, owner: str | None) -> Dataset:
    """The caller's dataset; another key's dataset is a 404 like a missing one."""
    dataset = get_owned(session, Dataset, dataset_id, owner)
    if dataset is None:
        raise NotFound("dataset", dataset_id)
    return dataset


@router.get("/{dataset_id}", response_model=DatasetRead, responses=problem_responses(404))
def read_dataset(session: SessionDep, owner: OwnerDep, dataset_id: str) -> DatasetRead:
    """One dataset with its column profile."""
    return DatasetRead.of(get_dataset_or_404(session, dataset_id, owner))


@router.delete("/{dataset_id}", status_code=204, responses=problem_responses(404, 409))
def delete_dataset(
    session: WriteSessionDep, settings: SettingsDep, owner: OwnerDep, dataset_id: str
) -> Response:
    """Delete a dataset no job refers to (409 otherwise: its jobs' results would be orphaned)."""
    with session.begin():
        dataset = get_dataset_or_404(session, dataset_id, owner)
        # Not filtered by owner: a job can only be submitted on its owner's dataset, and
        # the foreign key would refuse the delete whoever's job it was.
        jobs = session.scalar(select(func.count(Job.id)).where(Job.dataset_id == dataset_id)) or 0
        if jobs:
            raise ProblemError(
                409, f"dataset {dataset_id!r} is used by {jobs} job(s)", title="Dataset in use"
            )
        session.delete(dataset)
        session.flush()
        # Every owner's datasets count here: identical uploads share one file on disk.
        shared = session.scalar(
            select(func.count(Dataset.id)).where(Dataset.sha256 == dataset.sha256)
        )
    if not shared:
        dataset_path(settings.datasets_dir, dataset.sha256, dataset.format).unlink(missing_ok=True)
    return Response(status_code=204)
