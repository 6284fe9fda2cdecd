"""The one read path (app.store.reads): the owner is in the WHERE clause of every read of a
dataset, a job or a trial, and the best trial is the same whoever asks for it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store.models import Dataset, Job, JobStatus, Trial, TrialEpoch, TrialStatus
from app.store.reads import (
    best_trial,
    dataset_page,
    epochs_of,
    find_dataset,
    find_job,
    find_trial,
    get_dataset,
    get_job,
    get_trial,
    job_page,
    readable,
    trial_page,
)
from app.store.results import job_reads, trial_detail
from app.store.unit_of_work import write_session
from tests.factories import dataset_row

A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"


@dataclass(frozen=True)
class Owned:
    dataset: str
    job: str
    trials: frozenset[str]  # primary keys


def _owned_by(engine: Engine, owner: str | None, direction: str = "max") -> Owned:
    """A dataset, a job on it and three scored trials (one with a curve), all `owner`'s."""
    with write_session(engine) as session:
        dataset = dataset_row("classification")
        dataset.owner = owner
        session.add(dataset)
        session.flush()
        job = Job(
            owner=owner,
            dataset_id=dataset.id,
            status=JobStatus.SUCCEEDED,
            spec={"objective": {"name": "val_accuracy", "direction": direction}},
            search_space={},
            trials_planned=3,
            attempt=1,
        )
        session.add(job)
        session.flush()
        trials = [
            Trial(
                job_id=job.id,
                trial_id=f"0{n}",
                status=TrialStatus.COMPLETED,
                hyperparameters={"units_0": 8 << n},
                score=score,
                epochs_run=1,
            )
            for n, score in enumerate((0.5, 0.9, 0.1))
        ]
        session.add_all(trials)
        session.flush()
        session.add(TrialEpoch(trial_pk=trials[1].id, epoch=0, loss=0.3, metrics={"loss": 0.3}))
        return Owned(dataset.id, job.id, frozenset(t.id for t in trials))


def _ids(session: Session, model: type[Dataset] | type[Job] | type[Trial], owner: str | None):  # type: ignore[no-untyped-def]
    return set(session.scalars(readable(model, owner, model.id)))


def test_the_readable_statement_of_another_owner_finds_nothing(engine: Engine) -> None:
    a, b = _owned_by(engine, A), _owned_by(engine, B)
    keyless = _owned_by(engine, None)
    with Session(engine) as session:
        for owner, mine in ((A, a), (B, b)):
            assert _ids(session, Dataset, owner) == {mine.dataset}
            assert _ids(session, Job, owner) == {mine.job}
            assert _ids(session, Trial, owner) == mine.trials
        for model in (Dataset, Job, Trial):
            assert _ids(session, model, "cccccccccccccccc") == set()
        # A service without keys reads every row, whoever made it.
        assert _ids(session, Dataset, None) == {a.dataset, b.dataset, keyless.dataset}
        assert _ids(session, Job, None) == {a.job, b.job, keyless.job}
        assert _ids(session, Trial, None) == a.trials | b.trials | keyless.trials
        # A row made without keys is nobody's once keys are on.
        assert keyless.job not in _ids(session, Job, A)


def test_every_lookup_of_another_owners_row_finds_nothing(engine: Engine) -> None:
    a = _owned_by(engine, A)
    with Session(engine) as session:
        db = session.connection()
        assert find_dataset(session, a.dataset, B) is None
        assert dataset_page(session, B, limit=10, offset=0) == ([], 0)
        assert find_job(db, a.job, B) is None
        assert job_page(db, B, status=None, limit=10, offset=0) == ([], 0)
        with pytest.raises(NotFound, match="does not exist"):
            get_dataset(session, a.dataset, B)
        with pytest.raises(NotFound, match="does not exist"):
            get_job(db, a.job, B)

        # The job row handed to the trial reads is A's: the trials still check the owner.
        job = get_job(db, a.job, A)
        assert find_trial(db, job, "01", B) is None
        assert trial_page(db, job, B, order="started", limit=10, offset=0) == ([], 0)
        with pytest.raises(NotFound, match="does not exist"):
            get_trial(db, job, "01", B)

        # The owner, and a service without keys, find each of them.
        for owner in (A, None):
            assert get_dataset(session, a.dataset, owner).id == a.dataset
            assert dataset_page(session, owner, limit=10, offset=0)[1] == 1
            assert get_job(db, a.job, owner).id == a.job
            assert job_page(db, owner, status=JobStatus.SUCCEEDED, limit=10, offset=0)[1] == 1
            assert get_trial(db, job, "01", owner).trial_id == "01"
            rows, total = trial_page(db, job, owner, order="score", limit=2, offset=0)
            assert ([t.trial_id for t in rows], total) == (["01", "00"], 3)
        # An id no row can have (PostgreSQL refuses a NUL) is absent, not an error.
        assert find_job(db, "a\x00b", A) is None
        assert find_dataset(session, "a\x00b", None) is None
        assert find_trial(db, job, "0\x001", None) is None


@pytest.mark.parametrize(("direction", "best"), [("max", "01"), ("min", "02")])
def test_the_best_trial_is_the_one_the_jobs_summary_names(
    engine: Engine, direction: str, best: str
) -> None:
    a = _owned_by(engine, A, direction)
    with Session(engine) as session:
        db = session.connection()
        job = get_job(db, a.job, A)
        [summary] = job_reads(db, [job])
        trial = best_trial(db, job)
        assert trial is not None
        assert summary.best is not None
        assert (
            (trial.trial_id, trial.score)
            == (summary.best.trial_id, summary.best.score)
            == (
                best,
                {"01": 0.9, "02": 0.1}[best],
            )
        )
        detail = trial_detail(db, trial)
        assert detail.hyperparameters == summary.best.hyperparameters
        assert [e.loss for e in detail.metrics] == ([0.3] if best == "01" else [])
        assert len(epochs_of(db, trial)) == len(detail.metrics)
