"""Datasets: upload, list, read, delete; and the default search space a job on one would get."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from app.api.problems import problem_responses
from app.api.resolution import resolve_for_dataset
from app.api.upload_gate import UploadRoute
from app.errors import DatasetError, InvalidInput
from app.schemas import MAX_OFFSET, DatasetRead, DatasetSummary, Page
from app.search.profiler import ProfileLimits, ProfileRequest, profile_upload
from app.search.spec import JobCreate
from app.search.table_profiles import detect_format
from app.search.table_readers import NPZ_TARGET
from app.store.dataset_writes import add_dataset, delete_unused_dataset
from app.store.db import storable
from app.store.reads import dataset_page, get_dataset
from app.store.uploads import stream_to_temp

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
        dataset, created = add_dataset(
            uow=uow,
            datasets_dir=settings.datasets_dir,
            upload=upload,
            owner=owner,
            name=name or _name_from(file.filename),
            file_format=fmt,
            target=target,
            profile=profile,
        )
        if not created:
            response.status_code = 200
    finally:
        upload.temp_path.unlink(missing_ok=True)
    return DatasetRead.of(dataset)


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
    delete_unused_dataset(
        uow=uow, datasets_dir=settings.datasets_dir, dataset_id=dataset_id, owner=owner
    )
    return Response(status_code=204)


@router.get(
    "/{dataset_id}/search_space", response_model=dict[str, Any], responses=problem_responses(404)
)
def dataset_search_space(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, dataset_id: str
) -> dict[str, Any]:
    """The effective search space of a job on this dataset with no overrides (seeded units).

    Send it back, edited, as a job's `search_space`: entries override the defaults by name.
    """
    # The resolution a job submission runs (app.api.resolution), with no overrides: what the
    # dashboard's editor starts from shows exactly the ranges a job would use.
    get_dataset(session, dataset_id, owner)  # 404 unless the caller may read it
    body = JobCreate(dataset_id=dataset_id)
    _, resolution = resolve_for_dataset(session.connection(), settings, owner, body)
    return resolution.search_space
