"""Jobs: submit, list, read, cancel; and their trials and best trial."""

from __future__ import annotations

import logging
import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from app.api.problems import model_response, problem_responses
from app.api.resolution import resolve_for_dataset
from app.errors import ProblemError
from app.schemas import (
    MAX_OFFSET,
    JobPreview,
    JobRead,
    JobUpdate,
    Page,
    TrialDetail,
    TrialRead,
)
from app.search.spec import JobCreate, with_budget
from app.store.job_files import job_dir
from app.store.job_writes import delete_finished_job, insert_job, set_job_fields
from app.store.queue import request_cancel
from app.store.quotas import check_job_quota
from app.store.reads import (
    TrialOrder,
    best_trial,
    get_job,
    get_trial,
    job_page,
    trial_page,
)
from app.store.results import job_read, job_reads, trial_detail, trial_reads
from app.store.statuses import JobStatus

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

# GET /jobs?q=: a search box's text, not a document (each character is matched in every job).
MAX_SEARCH = 200


@router.post("/preview", response_model=JobPreview, responses=problem_responses(400))
def preview_job(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, body: JobCreate
) -> JobPreview:
    """What POST /jobs would queue, without queueing it: the resolved spec, the search
    space, the trials planned and the time budget, with what each derived value came from."""
    _, (spec, space, planned) = resolve_for_dataset(session.connection(), settings, owner, body)
    return JobPreview(
        spec=spec.model_dump(mode="json"),
        search_space=space,
        trials_planned=planned,
        max_runtime_s=spec.max_runtime_s,
    )


@router.post("", status_code=202, response_model=JobRead, responses=problem_responses(400, 429))
def submit_job(
    uow: UnitOfWorkDep, settings: SettingsDep, owner: OwnerDep, body: JobCreate
) -> Response:
    """Queue a search; every field but dataset_id has a default derived from the dataset."""
    with uow as session:
        db = session.connection()
        dataset, (spec, space, planned) = resolve_for_dataset(db, settings, owner, body)
        check_job_quota(session=session, owner=owner, max_jobs=settings.max_jobs_per_key)
        job = insert_job(
            db=db,
            owner=owner,
            name=body.name,
            notes=body.notes,
            dataset_id=dataset.id,
            spec=spec.model_dump(mode="json"),
            search_space=space,
            trials_planned=planned,
        )
        # No query: a job no worker has claimed has nothing else to read.
        read = job_read(db, job, settings=settings)
        read.dataset_name = dataset.name
    return model_response(read, status_code=202)


@router.get("", response_model=Page[JobRead])
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    status: JobStatus | None = None,
    dataset_id: Annotated[
        str | None, Query(max_length=64, description="only the jobs on this dataset")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_SEARCH,
            description="only the jobs whose name, id, notes or dataset's name contain this "
            "text (case-insensitive; `%` and `_` are plain characters)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """List jobs, newest first, optionally by status, dataset and a search text; `total`
    counts the jobs that match."""
    db = session.connection()
    jobs, total = job_page(
        db,
        owner,
        status=status,
        dataset_id=dataset_id,
        search=q.strip() if q else None,
        limit=limit,
        offset=offset,
    )
    # Progress and best trial for the whole page in a fixed number of queries (not per job).
    items = job_reads(db, jobs, settings=settings)
    return model_response(Page[JobRead](items=items, total=total, limit=limit, offset=offset))


@router.get("/{job_id}", response_model=JobRead, responses=problem_responses(404))
def read_job(session: SessionDep, settings: SettingsDep, owner: OwnerDep, job_id: str) -> Response:
    """Status, live progress, best so far and the effective search space."""
    db = session.connection()
    return model_response(job_read(db, get_job(db, job_id, owner), settings=settings))


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(404, 409),
)
def cancel_job(uow: UnitOfWorkDep, settings: SettingsDep, owner: OwnerDep, job_id: str) -> Response:
    """Cancel: a queued job at once, a running one at the end of its current epoch."""
    with uow as session:
        job = get_job(session.connection(), job_id, owner)
        if request_cancel(session=session, job_id=job_id) is None:
            raise ProblemError(
                409, f"job {job_id!r} has already finished ({job.status})", title="Job finished"
            )
    db = uow.session.connection()  # a new transaction, after the cancel's commit
    job = get_job(db, job_id, owner)  # as the cancel left it
    return model_response(job_read(db, job, settings=settings), status_code=202)


@router.get("/{job_id}/trials", response_model=Page[TrialRead], responses=problem_responses(404))
def list_trials(
    session: SessionDep,
    owner: OwnerDep,
    job_id: str,
    order: TrialOrder = "started",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Trials with hyperparameters, status, score, epochs and early stopping."""
    db = session.connection()
    job = get_job(db, job_id, owner)
    trials, total = trial_page(db, job, owner, order=order, limit=limit, offset=offset)
    page = Page[TrialRead](items=trial_reads(trials), total=total, limit=limit, offset=offset)
    return model_response(page)


@router.get(
    "/{job_id}/trials/{trial_id}", response_model=TrialDetail, responses=problem_responses(404)
)
def read_trial(session: SessionDep, owner: OwnerDep, job_id: str, trial_id: str) -> Response:
    """One trial with its per-epoch metrics."""
    db = session.connection()
    trial = get_trial(db, get_job(db, job_id, owner), trial_id, owner)
    return model_response(trial_detail(db, trial))


@router.get("/{job_id}/best", response_model=TrialDetail, responses=problem_responses(404))
def read_best(session: SessionDep, owner: OwnerDep, job_id: str) -> Response:
    """The best completed trial so far, with its per-epoch metrics."""
    db = session.connection()
    trial = best_trial(db, get_job(db, job_id, owner))
    if trial is None:
        raise ProblemError(404, f"job {job_id!r} has no completed trial yet", title="No best trial")
    return model_response(trial_detail(db, trial))


@router.patch("/{job_id}", response_model=JobRead, responses=problem_responses(404))
def update_job(
    uow: UnitOfWorkDep, settings: SettingsDep, owner: OwnerDep, job_id: str, body: JobUpdate
) -> Response:
    """Rename a job (its `name`; null clears it) or change its `notes` at any point of its
    life; change a queued or running job's time budget (`max_runtime_s`)."""
    given = body.model_fields_set
    with uow as session:
        job = get_job(session.connection(), job_id, owner)  # 404 unless the caller may read it
        values: dict[str, Any] = {
            key: getattr(body, key) for key in ("name", "notes") if key in given
        }
        if "max_runtime_s" in given:
            if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                raise ProblemError(
                    409,
                    f"max_runtime_s: job {job_id!r} is {job.status}; only a queued or "
                    "running job's budget can change",
                    title="Job finished",
                )
            values["spec"] = with_budget(job.spec, body.max_runtime_s)
        set_job_fields(session=session, job_id=job_id, values=values)
    db = uow.session.connection()
    return model_response(job_read(db, get_job(db, job_id, owner), settings=settings))


@router.delete("/{job_id}", status_code=204, responses=problem_responses(404, 409))
def delete_job(uow: UnitOfWorkDep, settings: SettingsDep, owner: OwnerDep, job_id: str) -> Response:
    """Delete a finished job: its trials, their curves and its files (model, logs, project).

    A queued or running job is a 409: cancel it first. The status is checked in the DELETE
    itself, so a job a worker claims meanwhile is never deleted under it."""
    with uow as session:
        job = get_job(session.connection(), job_id, owner)
        if not delete_finished_job(session=session, job_id=job_id):
            raise ProblemError(
                409,
                f"job {job_id!r} is {job.status}: cancel it, then delete it once it has stopped",
                title="Job not finished",
            )
    # After the commit: a failed commit leaves the job and its files as they were.
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
    logger.info("job deleted", extra={"job_id": job_id})
    return Response(status_code=204)
