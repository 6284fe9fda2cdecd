"""Jobs: submit, list, read, cancel; and their trials and best trial."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Connection, Row, func, insert, select
from sqlalchemy.orm import Session

from app.api.auth import OwnerDep, owned
from app.api.deps import SessionDep, SettingsDep, WriteSessionDep, reading
from app.api.problems import problem_responses
from app.api.responses import model_response
from app.errors import NotFound, ProblemError
from app.schemas import MAX_OFFSET, JobRead, Page, TrialDetail, TrialRead
from app.search.spec import JobCreate, resolve_spec
from app.settings import Settings
from app.store.db import storable
from app.store.disk_usage import cached_directory_bytes
from app.store.job_files import job_dir
from app.store.models import Dataset, Job, JobStatus, new_id, utcnow
from app.store.queue import request_cancel
from app.store.results import (
    JOBS,
    JobRow,
    TrialOrder,
    best_trial,
    find_job,
    find_trial,
    job_reads,
    trial_detail,
    trial_page,
)
from app.store.writers import one_sqlite_writer

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _reads(db: Connection, settings: Settings, jobs: Sequence[JobRow]) -> list[JobRead]:
    # Progress and best trial for the whole page in a fixed number of queries (not per job).
    reads = job_reads(db, jobs)
    for read in reads:
        # A job no worker has claimed yet has no directory to walk.
        if read.attempt > 0:
            read.disk_bytes = cached_directory_bytes(job_dir(settings, read.id), read.status)
    return reads


def _read(db: Connection, settings: Settings, job: JobRow) -> JobRead:
    return _reads(db, settings, [job])[0]


def get_job_or_404(db: Session | Connection, job_id: str, owner: str | None) -> Row[Any]:
    """The caller's job (its row); another key's job is a 404 like a missing one."""
    job = find_job(db.connection() if isinstance(db, Session) else db, job_id, owner)
    if job is None:
        raise NotFound("job", job_id)
    return job


def _dataset_of_job(session: Session, dataset_id: str, owner: str | None) -> Row | None:
    """The three columns a submission needs, if the caller may use the dataset. Not the
    ORM row: decoding its column profile (JSON) was a fifth of a submission's time."""
    if not storable(dataset_id):
        return None
    query = select(Dataset.id, Dataset.task, Dataset.features).where(Dataset.id == dataset_id)
    return session.execute(owned(query, Dataset, owner)).first()


@router.post("", status_code=202, response_model=JobRead, responses=problem_responses(400))
def submit_job(
    session: WriteSessionDep, settings: SettingsDep, owner: OwnerDep, body: JobCreate
) -> Response:
    """Queue a search; every field but dataset_id has a default derived from the dataset."""
    with one_sqlite_writer(session), session.begin():
        dataset = _dataset_of_job(session, body.dataset_id, owner)
        if dataset is None:
            raise ProblemError(
                422,
                f"dataset_id: dataset {body.dataset_id!r} does not exist",
                title="Invalid input",
                errors=[{"loc": ["body", "dataset_id"], "msg": "unknown dataset", "type": "value"}],
            )
        spec, space, planned = resolve_spec(body, task=dataset.task, features=dataset.features)
        row = {
            "id": new_id(),
            "owner": owner,
            "dataset_id": dataset.id,
            "status": JobStatus.QUEUED,
            "spec": spec,
            "search_space": space,
            "trials_planned": planned,
            "attempt": 0,
            "cancel_requested": False,
            "created_at": utcnow(),
        }
        # A plain INSERT, not the ORM's unit of work: its flush was the largest part of
        # a submission's CPU after the framework's (benchmarks/, item 5).
        session.execute(insert(Job.__table__), [row])
    # The answer is built from the same values (a new job has nothing else to read).
    return model_response(_read(session.connection(), settings, Job(**row)), status_code=202)


@router.get("", response_model=Page[JobRead])
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """List jobs, newest first, optionally by status."""
    where = [Job.status == status] if status else []
    total = session.scalar(owned(select(func.count(Job.id)), Job, owner).where(*where)) or 0
    jobs = session.execute(
        owned(select(JOBS), Job, owner)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    ).all()
    items = _reads(session.connection(), settings, jobs)
    return model_response(Page[JobRead](items=items, total=total, limit=limit, offset=offset))


@router.get("/{job_id}", response_model=JobRead, responses=problem_responses(404))
async def read_job(request: Request, owner: OwnerDep, job_id: str) -> Response:
    """Status, live progress, best so far and the effective search space."""
    settings: Settings = request.app.state.settings

    def work(db: Connection) -> Response:
        return model_response(_read(db, settings, get_job_or_404(db, job_id, owner)))

    return await reading(request, work)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(404, 409),
)
def cancel_job(
    session: WriteSessionDep, settings: SettingsDep, owner: OwnerDep, job_id: str
) -> Response:
    """Cancel: a queued job at once, a running one at the end of its current epoch."""
    with one_sqlite_writer(session), session.begin():
        job = get_job_or_404(session, job_id, owner)
        if request_cancel(session=session, job_id=job_id) is None:
            raise ProblemError(
                409, f"job {job_id!r} has already finished ({job.status})", title="Job finished"
            )
    job = get_job_or_404(session, job_id, owner)  # as the cancel left it
    return model_response(_read(session.connection(), settings, job), status_code=202)


@router.get("/{job_id}/trials", response_model=Page[TrialRead], responses=problem_responses(404))
async def list_trials(
    request: Request,
    owner: OwnerDep,
    job_id: str,
    order: TrialOrder = "started",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Trials with hyperparameters, status, score, epochs and early stopping."""

    def work(db: Connection) -> Response:
        job = get_job_or_404(db, job_id, owner)
        items, total = trial_page(db, job, order=order, limit=limit, offset=offset)
        page = Page[TrialRead](items=items, total=total, limit=limit, offset=offset)
        return model_response(page)

    return await reading(request, work)


@router.get(
    "/{job_id}/trials/{trial_id}", response_model=TrialDetail, responses=problem_responses(404)
)
def read_trial(session: SessionDep, owner: OwnerDep, job_id: str, trial_id: str) -> Response:
    """One trial with its per-epoch metrics."""
    job = get_job_or_404(session, job_id, owner)
    trial = find_trial(session, job, trial_id)
    if trial is None:
        raise NotFound("trial", trial_id)
    return model_response(trial_detail(session, trial))


@router.get("/{job_id}/best", response_model=TrialDetail, responses=problem_responses(404))
def read_best(session: SessionDep, owner: OwnerDep, job_id: str) -> Response:
    """The best completed trial so far, with its per-epoch metrics."""
    job = get_job_or_404(session, job_id, owner)
    trial = best_trial(session, job)
    if trial is None:
        raise ProblemError(404, f"job {job_id!r} has no completed trial yet", title="No best trial")
    return model_response(trial_detail(session, trial))
