"""A job spec resolved for its dataset: what POST /jobs stores, POST /jobs/preview answers
and GET /datasets/{id}/search_space shows, decided by one function so the three agree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from app.errors import ProblemError
from app.search.folds import smallest_class_rows
from app.search.spec import JobCreate, Resolution, resolve_spec
from app.search.spec_limits import SpecLimits
from app.settings import Settings, serve_layout
from app.store.reads import dataset_for_job
from app.store.uploads import dataset_path
from app.store.warm_start_reads import WarmStartReads


def resolve_for_dataset(
    db: Connection, settings: Settings, owner: str, body: JobCreate
) -> tuple[Any, Resolution]:
    """The dataset and the resolution of `body` for it (422 naming what is wrong)."""
    dataset = dataset_for_job(db, body.dataset_id, owner)
    if dataset is None:
        raise ProblemError(
            422,
            f"dataset_id: dataset {body.dataset_id!r} does not exist",
            title="Invalid input",
            errors=[{"loc": ["body", "dataset_id"], "msg": "unknown dataset", "type": "value"}],
        )
    resolution = resolve_spec(
        body,
        task=dataset.task,
        features=dataset.features,
        limits=SpecLimits.from_settings(settings, rows=dataset.rows),
        rows=dataset.rows,
        # Read from the file only when folds are asked for on a classification table.
        smallest_class=lambda: smallest_class_rows(
            dataset_path(settings.datasets_dir, dataset.sha256, dataset.format),
            dataset.format,
            dataset.target,
            max_unpacked_bytes=8 * (settings.max_upload_mb << 20),
        ),
        warm_start=WarmStartReads(db, owner, dataset.id),
        # The auto budget assumes the layout `serve` starts (one worker per core).
        workers=serve_layout(settings)[0],
    )
    return dataset, resolution
