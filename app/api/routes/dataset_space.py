"""The default search space a job on a dataset would get: what the dashboard's editor starts from.

Read-only: the same `effective_search_space` a job submission runs, with no overrides, so
the editor shows exactly the seeded ranges (units from the dataset's width) a job would use.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.auth import OwnerDep
from app.api.deps import SessionDep
from app.api.problems import problem_responses
from app.search.search_space import effective_search_space
from app.store.reads import get_dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get(
    "/{dataset_id}/search_space", response_model=dict[str, Any], responses=problem_responses(404)
)
def dataset_search_space(session: SessionDep, owner: OwnerDep, dataset_id: str) -> dict[str, Any]:
    """The effective search space of a job on this dataset with no overrides (seeded units).

    Send it back, edited, as a job's `search_space`: entries override the defaults by name.
    """
    dataset = get_dataset(session, dataset_id, owner)
    return effective_search_space(None, features=dataset.features)
