"""What a search process reads of its job: the job and dataset it searches (once, when it
starts), and what its model card reads back of the job's rows (app.store.search_values
holds both as plain values).

The same rules as app.store.queue: the session is a keyword argument, nothing here commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import Dataset, Job, Trial
from app.store.search_values import CardFacts, CardTrial, SearchDataset, SearchJob
from app.store.trial_records import completed_trial_count


def search_job(*, session: Session, job_id: str) -> SearchJob:
    """The job and its dataset (raises NoResultFound when either is gone)."""
    job = session.get_one(Job, job_id)
    dataset = session.get_one(Dataset, job.dataset_id)
    return SearchJob(
        id=job.id,
        name=job.name,
        spec=job.spec,
        search_space=job.search_space,
        trials_planned=job.trials_planned,
        dataset=SearchDataset(
            id=dataset.id,
            name=dataset.name,
            sha256=dataset.sha256,
            format=dataset.format,
            rows=dataset.rows,
            rows_dropped=dataset.rows_dropped,
            target=dataset.target,
            task=dataset.task,
            classes=dataset.classes,
            columns=dataset.columns,
        ),
    )


def card_facts(*, session: Session, job_id: str, trial_ids: list[str]) -> CardFacts:
    """The job's scores and timings as they stand, with the trials `trial_ids` (the card's
    trial, or its ensemble's members)."""
    job = session.get_one(Job, job_id)
    rows = session.scalars(
        select(Trial).where(Trial.job_id == job_id, Trial.trial_id.in_(trial_ids))
    )
    return CardFacts(
        started_at=job.started_at,
        baselines=job.baselines,
        test_metrics=job.test_metrics,
        trials_completed=completed_trial_count(session=session, job_id=job_id),
        trials={
            row.trial_id: CardTrial(
                hyperparameters=row.hyperparameters,
                score=row.score,
                fold_scores=row.fold_scores,
                best_epoch=row.best_epoch,
                epochs_run=row.epochs_run,
                stopped_early=row.stopped_early,
                duration_s=row.duration_s,
            )
            for row in rows
        },
    )
