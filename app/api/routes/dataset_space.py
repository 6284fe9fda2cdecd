"""The default search space a job on a dataset would get: what the dashboard's editor starts from.

Read-only: the resolution a job submission runs (app.api.resolution), with no overrides,
so the editor shows exactly the ranges a job would use: units seeded from the dataset's
width, batch sizes from its rows.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep
from app.api.problems import problem_responses
from app.api.resolution import resolve_for_dataset
from app.search.spec import JobCreate
from app.store.reads import get_dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get(
    "/{dataset_id}/search_space", response_model=dict[str, Any], responses=problem_responses(404)
)
def dataset_search_space(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, dataset_id: str
) -> dict[str, Any]:
    """The effective search space of a job on this dataset with no overrides (seeded units).

    Send it back, edited, as a job's `search_space`: entries override the defaults by name.
    """
    get_dataset(session, dataset_id, owner)  # 404 unless the caller may read it
    body = JobCreate(dataset_id=dataset_id)
    _, resolution = resolve_for_dataset(session.connection(), settings, owner, body)
    return resolution.search_space
