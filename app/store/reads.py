"""Who may read what, and every read of a dataset, a job or a trial that a caller asks for.

polar's `get_readable_statement(auth_subject)`: `readable(model, owner)` is the SELECT of
the rows the caller may read, with the owner in its WHERE clause (owner None, a service
without keys: no clause, every row). Each lookup below starts from it, so a row of
another key is never loaded and then compared: it is as good as absent, a 404 like an id
nobody has. A trial is the caller's when its job is.

The polled reads (GET /jobs/{id} and its trials page) run statements built here once, from
the same `readable`, with bound parameters, on the session's Connection: the ORM's
per-query work (building the statement, its cache key, loading entities) was most of such
a request's CPU (docs/benchmarks.md, "Figures that explain design choices"). Their rows
answer attribute access like a Job or a Trial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    Connection,
    Result,
    Row,
    Select,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from app.errors import NotFound, ProblemError
from app.settings import Settings
from app.store.db import storable
from app.store.job_files import best_trial_file, trial_model_path
from app.store.models import Dataset, Job, JobStatus, Trial, TrialEpoch, TrialStatus
from app.store.pareto_reads import front_best, job_objectives

JOBS = Job.__table__
DATASETS = Dataset.__table__
TRIALS = Trial.__table__
EPOCHS = TrialEpoch.__table__
JobRow = Job | Row[Any]
TrialRow = Trial | Row[Any]
TrialOrder = Literal["score", "started"]
# A caller's owner id, or, in a statement built once, the bound parameter that stands for it.
OwnerClause = str | BindParameter[Any] | None

_OWNER = bindparam("owner")
_JOB_ID = bindparam("job_id")
_IDS = bindparam("ids", expanding=True)


def readable(
    model: type[Dataset] | type[Job] | type[Trial], owner: OwnerClause, *columns: Any
) -> Select[Any]:
    """The SELECT of the rows of `model` that `owner` may read: of `columns` when given
    (a table, for Core rows; an aggregate), else of the model's entities."""
    statement = select(*columns) if columns else select(model)
    if owner is None:
        return statement
    if model is Trial:
        return statement.join_from(Trial, Job, Job.id == Trial.job_id).where(Job.owner == owner)
    return statement.where(model.owner == owner)


Prebuilt = dict[bool, Select[Any]]


def _prebuilt(build: Callable[[OwnerClause], Select[Any]]) -> Prebuilt:
    """`build` for a service without keys (False) and for an owner bound at run time (True)."""
    return {False: build(None), True: build(_OWNER)}


def _run(db: Connection, statement: Prebuilt, owner: str | None, **params: Any) -> Result[Any]:
    if owner is not None:
        params["owner"] = owner
    return db.execute(statement[owner is not None], params)


# --- Datasets (ORM entities: uploads, deletes and predictions use the whole row) ---------


def find_dataset(session: Session, dataset_id: str, owner: str | None) -> Dataset | None:
    if not storable(dataset_id):  # no row has it, and PostgreSQL would fail the query
        return None
    return session.scalars(readable(Dataset, owner).where(Dataset.id == dataset_id)).first()


def get_dataset(session: Session, dataset_id: str, owner: str | None) -> Dataset:
    dataset = find_dataset(session, dataset_id, owner)
    if dataset is None:
        raise NotFound("dataset", dataset_id)
    return dataset


# A list's columns: everything but the column profile, whose length the database counts.
# Reading and decoding each profile (a vocabulary per categorical column) only to send it
# made a page of wide datasets many times larger than its summaries (docs/benchmarks.md).
_SUMMARY_COLUMNS = tuple(c for c in DATASETS.c if c.name != "columns")


def _input_column_count(session: Session) -> Any:
    length = (
        func.jsonb_array_length
        if session.get_bind().dialect.name == "postgresql"
        else func.json_array_length
    )
    return length(DATASETS.c.columns).label("input_column_count")


def dataset_page(
    session: Session, owner: str | None, *, limit: int, offset: int
) -> tuple[Sequence[Row[Any]], int]:
    """A page of the caller's datasets, newest first, as summaries (no column profile),
    and how many there are."""
    total = session.scalar(readable(Dataset, owner, func.count(Dataset.id))) or 0
    rows = session.execute(
        readable(Dataset, owner, *_SUMMARY_COLUMNS, _input_column_count(session))
        .order_by(Dataset.created_at.desc(), Dataset.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return rows, total


def same_upload(
    session: Session, owner: str | None, *, sha256: str, target: str, task: str
) -> Dataset | None:
    """The caller's dataset of these very bytes, target and task, if there is one: a second
    upload of it is the same dataset (the oldest, should a race have made two)."""
    return session.scalars(
        readable(Dataset, owner)
        .where(Dataset.sha256 == sha256, Dataset.target == target, Dataset.task == task)
        .order_by(Dataset.created_at, Dataset.id)
        .limit(1)
    ).first()


def dataset_for_job(db: Connection, dataset_id: str, owner: str | None) -> Row[Any] | None:
    """The columns a submission needs, if the caller may use the dataset. Not the ORM
    row: decoding its column profile (JSON), which a submission never uses, was a
    noticeable part of its time (docs/benchmarks.md). (Rows, file and target:
    cross-validation's folds are decided from them, app.search.folds.)"""
    if not storable(dataset_id):
        return None
    columns = (
        Dataset.id,
        Dataset.name,
        Dataset.task,
        Dataset.features,
        Dataset.rows,
        Dataset.sha256,
        Dataset.format,
        Dataset.target,
    )
    return db.execute(readable(Dataset, owner, *columns).where(Dataset.id == dataset_id)).first()


# --- Jobs ----------------------------------------------------------------------------------

# A job's row and its dataset's name, in one statement (the dashboard names the dataset).
_DATASET_NAME = DATASETS.c.name.label("dataset_name")


def _jobs(owner: OwnerClause) -> Select[Any]:
    return readable(Job, owner, JOBS, _DATASET_NAME).join_from(
        JOBS, DATASETS, DATASETS.c.id == JOBS.c.dataset_id
    )


_JOB = _prebuilt(lambda owner: _jobs(owner).where(JOBS.c.id == _JOB_ID))


def find_job(db: Connection, job_id: str, owner: str | None) -> Row[Any] | None:
    if not storable(job_id):
        return None
    return _run(db, _JOB, owner, job_id=job_id).first()


def get_job(db: Connection, job_id: str, owner: str | None) -> Row[Any]:
    job = find_job(db, job_id, owner)
    if job is None:
        raise NotFound("job", job_id)
    return job


def _job_filters(
    status: JobStatus | None, dataset_id: str | None, search: str | None
) -> list[Any] | None:
    """The WHERE clauses of a job list; None when nothing can match. `search` is a
    case-insensitive substring of the job's name, id, notes or dataset's name, its `%` and
    `_` literal (autoescape), bound as a parameter. A scan of the caller's jobs: a substring
    uses no index, and a job list is the size of one person's work."""
    where: list[Any] = [Job.status == status] if status else []
    if dataset_id:
        if not storable(dataset_id):
            return None
        where.append(Job.dataset_id == dataset_id)
    if search:
        if not storable(search):
            return None
        columns = (JOBS.c.name, JOBS.c.id, JOBS.c.notes, DATASETS.c.name)
        where.append(or_(*(column.icontains(search, autoescape=True) for column in columns)))
    return where


def job_page(
    db: Connection,
    owner: str | None,
    *,
    status: JobStatus | None,
    limit: int,
    offset: int,
    dataset_id: str | None = None,
    search: str | None = None,
) -> tuple[Sequence[Row[Any]], int]:
    """A page of the caller's jobs, newest first, optionally of one status, of one dataset
    and matching a search (`_job_filters`), and how many match in all."""
    where = _job_filters(status, dataset_id, search)
    if where is None:
        return [], 0
    count = readable(Job, owner, func.count(JOBS.c.id))
    if search:  # the dataset's name is searched too
        count = count.join_from(JOBS, DATASETS, DATASETS.c.id == JOBS.c.dataset_id)
    total = db.scalar(count.where(*where)) or 0
    rows = db.execute(
        _jobs(owner)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return rows, total


# --- Trials --------------------------------------------------------------------------------

_TRIAL = _prebuilt(
    lambda owner: readable(Trial, owner, TRIALS).where(
        TRIALS.c.job_id == _JOB_ID, TRIALS.c.trial_id == bindparam("trial_id")
    )
)
_TRIAL_COUNT = _prebuilt(
    lambda owner: readable(Trial, owner, func.count(TRIALS.c.id)).where(TRIALS.c.job_id == _JOB_ID)
)


def _trial_page(ordering: tuple[Any, ...], owner: OwnerClause) -> Select[Any]:
    return (
        readable(Trial, owner, TRIALS)
        .where(TRIALS.c.job_id == _JOB_ID)
        .order_by(*ordering)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


_TRIAL_PAGE = {
    order: _prebuilt(partial(_trial_page, ordering))
    for order, ordering in {
        ("started", None): (TRIALS.c.started_at, TRIALS.c.trial_id),
        ("score", True): (TRIALS.c.score.desc().nulls_last(), TRIALS.c.trial_id),
        ("score", False): (TRIALS.c.score.asc().nulls_last(), TRIALS.c.trial_id),
    }.items()
}


def maximize(job: JobRow) -> bool:
    # A list objective (multi-objective search): KerasTuner's score is its first objective.
    objective = job.spec["objective"]
    first = objective[0] if isinstance(objective, list) else objective
    return bool(first["direction"] == "max")


def find_trial(db: Connection, job: JobRow, trial_id: str, owner: str | None) -> Row[Any] | None:
    if not storable(trial_id):
        return None
    return _run(db, _TRIAL, owner, job_id=job.id, trial_id=trial_id).first()


def get_trial(db: Connection, job: JobRow, trial_id: str, owner: str | None) -> Row[Any]:
    trial = find_trial(db, job, trial_id, owner)
    if trial is None:
        raise NotFound("trial", trial_id)
    return trial


def trial_page(
    db: Connection,
    job: JobRow,
    owner: str | None,
    *,
    order: TrialOrder,
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[Any]], int]:
    """A page of the job's trials and their total (one snapshot: the caller's transaction)."""
    total = _run(db, _TRIAL_COUNT, owner, job_id=job.id).scalar() or 0
    statement = _TRIAL_PAGE[(order, maximize(job) if order == "score" else None)]
    rows = _run(db, statement, owner, job_id=job.id, limit=limit, offset=offset).all()
    return rows, total


_EPOCHS = select(EPOCHS).where(EPOCHS.c.trial_pk == bindparam("trial_pk")).order_by(EPOCHS.c.epoch)


def epochs_of(db: Connection, trial: TrialRow) -> Sequence[Row[Any]]:
    """A trial's per-epoch rows, in order (the trial was read through `readable`)."""
    return db.execute(_EPOCHS, {"trial_pk": trial.id}).all()


# --- The best trial: defined once, for a job's summary and for GET /jobs/{id}/best ---------


def _best_of_jobs(highest: bool, columns: tuple[Any, ...]) -> Select[Any]:
    """Each job's best completed trial: a correlated subquery picks its id through the
    (job_id, score) index, inside the database; no query per job, and no ranking of
    every trial of every job. Ties go to the lower trial id, as on a page by score."""
    inner = TRIALS.alias("inner")
    # The rows are filtered on `score IS NOT NULL`: no NULLS LAST, so both backends walk
    # the (job_id, score) index instead of sorting every trial of the job.
    score = inner.c.score.desc() if highest else inner.c.score.asc()
    best_id = (
        select(inner.c.id)
        .where(
            inner.c.job_id == JOBS.c.id,
            inner.c.status == TrialStatus.COMPLETED,
            inner.c.score.is_not(None),
        )
        .order_by(score, inner.c.trial_id)
        .limit(1)
        .correlate(JOBS)
        .scalar_subquery()
    )
    return (
        select(*columns)
        .select_from(TRIALS)
        .join(JOBS, TRIALS.c.id == best_id)
        .where(JOBS.c.id.in_(_IDS))
    )


_SUMMARY = (TRIALS.c.job_id, TRIALS.c.trial_id, TRIALS.c.score, TRIALS.c.hyperparameters)
_BEST = {
    (highest, whole): _best_of_jobs(highest, (TRIALS,) if whole else _SUMMARY)
    for highest in (True, False)
    for whole in (True, False)
}


def best_trials(
    db: Connection, jobs: Sequence[JobRow], *, whole: bool = False
) -> dict[str, Row[Any]]:
    """Each job's best completed trial (job_id, trial_id, score and hyperparameters; every
    column when `whole`), in one statement per objective direction. `jobs` were read
    through `readable`."""
    best: dict[str, Row[Any]] = {}
    for direction in (True, False):
        ids = [job.id for job in jobs if maximize(job) == direction]
        if ids:
            rows = db.execute(_BEST[(direction, whole)], {"ids": ids})
            best.update({row.job_id: row for row in rows})
    for job in jobs:
        # A multi-objective job's best: on its Pareto front (a tie on the first objective
        # goes to the trial better on the next), one query per such job.
        if job.id in best and job_objectives(job) is not None:
            front = front_best(db, job)
            if front is not None:
                best[job.id] = front
    return best


def best_trial(db: Connection, job: JobRow) -> Row[Any] | None:
    return best_trials(db, [job], whole=True).get(job.id)


# --- A trial's model: GET .../trials/{trial_id}/model and POST .../predict?trial_id= ---------


def trial_model_file(
    db: Connection, settings: Settings, job: JobRow, trial_id: str, owner: str | None
) -> Path:
    """Trial `trial_id`'s model: its own file (a Pareto-front trial's, written by
    tuner_jobs.search.front_models), or the best trial's model (the job's, unless that is
    its ensemble) for the best trial. 404 for an unknown trial, and for one whose model was
    not kept (the search prunes the others)."""
    trial = get_trial(db, job, trial_id, owner)
    path = trial_model_path(settings, job.id, trial.trial_id)
    if path.is_file():
        return path
    best = best_trial(db, job)
    if best is not None and best.trial_id == trial.trial_id:
        path = best_trial_file(settings, job.id)
        if path.is_file():
            return path
    raise ProblemError(
        404,
        f"trial {trial_id!r} of job {job.id!r} has no model: a job keeps its best trial's, "
        "and a multi-objective job each Pareto-front trial's (GET /jobs/{id}/pareto)",
        title="No model for this trial",
    )
