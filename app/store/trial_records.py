"""Trial and epoch SQL of a running search: a trial started, an epoch ended, a trial ended
(by its own process, by one that died, or given up by a parallel job's chief), and the
reads the search makes of what it wrote.

The same rules as app.store.queue: the session is a keyword argument and nothing here
commits. The fence on the claim is the caller's (app.store.search_gateway checks
app.store.slot_queue.holds in the same transaction).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.store.claims import Claim, SlotClaim
from app.store.db import upsert
from app.store.models import Trial, TrialEpoch, TrialStatus, utcnow
from app.store.search_values import EpochLosses, TrialEnd

# What a trial's (re)start resets: every column a previous run of it may have written.
_RESTARTED = [
    "status",
    "hyperparameters",
    "score",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "pruned",
    "message",
    "started_at",
    "finished_at",
    "duration_s",
    "overfit_epoch",
    "generalization_gap",
    "worker",
    "origin",
    "origin_job_id",
    "fold_scores",
]


def start_trial(
    *,
    session: Session,
    claim: Claim | SlotClaim,
    trial_id: str,
    hyperparameters: dict[str, Any],
    origin_job_id: str | None = None,
) -> int:
    """Upsert the trial RUNNING on (job, trial id), so a resumed job never duplicates it;
    returns its primary key. `origin_job_id`: the job a warm-started trial's configuration
    came from."""
    pk = upsert(
        session,
        Trial,
        {
            "job_id": claim.job_id,
            "trial_id": trial_id,
            "status": TrialStatus.RUNNING,
            "hyperparameters": hyperparameters,
            "score": None,
            "best_epoch": None,
            "epochs_run": 0,
            "stopped_early": False,
            "pruned": False,
            "message": None,
            "started_at": utcnow(),
            "finished_at": None,
            "duration_s": None,
            "overfit_epoch": None,
            "generalization_gap": None,
            "worker": claim.worker_id,
            "origin": "search" if origin_job_id is None else "warm_start",
            "origin_job_id": origin_job_id,
            "fold_scores": None,
        },
        conflict=["job_id", "trial_id"],
        update=_RESTARTED,
        returning=Trial.id,
    )
    # A trial that reruns after a resume starts its curve afresh.
    session.execute(delete(TrialEpoch).where(TrialEpoch.trial_pk == pk))
    return int(pk)


def record_epoch(
    *,
    session: Session,
    trial_pk: int,
    epoch: int,
    metrics: dict[str, float | None],
    learning_rate: float | None,
) -> None:
    """Upsert one epoch of the trial's curve on (trial, epoch)."""
    upsert(
        session,
        TrialEpoch,
        {
            "trial_pk": trial_pk,
            "epoch": epoch,
            "loss": metrics.get("loss"),
            "val_loss": metrics.get("val_loss"),
            "learning_rate": learning_rate,
            "metrics": metrics,
            "recorded_at": utcnow(),
        },
        conflict=["trial_pk", "epoch"],
        update=["loss", "val_loss", "learning_rate", "metrics", "recorded_at"],
    )
    # The curve's length, not the calls: with cross-validation each fold's epoch
    # rewrites the same (mean) row.
    recorded = select(func.count()).where(TrialEpoch.trial_pk == trial_pk).scalar_subquery()
    session.execute(update(Trial).where(Trial.id == trial_pk).values(epochs_run=recorded))


def record_fold_scores(*, session: Session, trial_pk: int, fold_scores: list[float | None]) -> None:
    """A cross-validated trial's scores of the folds it has finished so far: its progress
    between folds, whose epochs rewrite the same (mean) rows of its curve."""
    session.execute(update(Trial).where(Trial.id == trial_pk).values(fold_scores=fold_scores))


def trial_curve(*, session: Session, trial_pk: int) -> list[EpochLosses]:
    """The trial's recorded (epoch, loss, val_loss), what its overfitting is judged on."""
    rows = session.execute(
        select(TrialEpoch.epoch, TrialEpoch.loss, TrialEpoch.val_loss).where(
            TrialEpoch.trial_pk == trial_pk
        )
    ).all()
    return [(row.epoch, row.loss, row.val_loss) for row in rows]


def end_trial(
    *,
    session: Session,
    trial_pk: int,
    end: TrialEnd,
    overfit_epoch: int | None,
    generalization_gap: float | None,
) -> None:
    """Write the trial's outcome, as given (finite numbers or None)."""
    session.execute(
        update(Trial)
        .where(Trial.id == trial_pk)
        .values(
            status=end.status,
            score=end.score,
            best_epoch=end.best_epoch,
            stopped_early=end.stopped_early,
            pruned=end.pruned,
            message=end.message,
            finished_at=utcnow(),
            duration_s=end.duration_s,
            overfit_epoch=overfit_epoch,
            generalization_gap=generalization_gap,
            objectives=end.objectives,
            fold_scores=end.fold_scores,
        )
    )


def running_trial_pk(*, session: Session, job_id: str, trial_id: str) -> int | None:
    """The trial's primary key while it is RUNNING in the database, else None."""
    return session.scalar(
        select(Trial.id).where(
            Trial.job_id == job_id,
            Trial.trial_id == trial_id,
            Trial.status == TrialStatus.RUNNING,
        )
    )


def running_trial_ids(*, session: Session, job_id: str) -> list[str]:
    """Trials of the job still RUNNING in the database."""
    return list(
        session.scalars(
            select(Trial.trial_id).where(
                Trial.job_id == job_id, Trial.status == TrialStatus.RUNNING
            )
        )
    )


def abandon_trial(*, session: Session, job_id: str, trial_id: str, message: str) -> None:
    """A RUNNING trial whose process died and will not be rerun: FAILED with the reason."""
    session.execute(
        update(Trial)
        .where(
            Trial.job_id == job_id,
            Trial.trial_id == trial_id,
            Trial.status == TrialStatus.RUNNING,
        )
        .values(status=TrialStatus.FAILED, message=message, finished_at=utcnow())
    )


def completed_epoch_metrics(
    *, session: Session, job_id: str
) -> list[tuple[str, int, dict[str, Any] | None]]:
    """(trial id, epoch, metrics) of every epoch of the job's COMPLETED trials."""
    rows = session.execute(
        select(Trial.trial_id, TrialEpoch.epoch, TrialEpoch.metrics)
        .join(TrialEpoch, TrialEpoch.trial_pk == Trial.id)
        .where(Trial.job_id == job_id, Trial.status == TrialStatus.COMPLETED)
    ).all()
    return [(row.trial_id, row.epoch, row.metrics) for row in rows]


def completed_trial_count(*, session: Session, job_id: str) -> int:
    """The job's COMPLETED trials: what the model card reports, and what the supervisor asks
    of a search its time budget stopped (did it find anything?)."""
    return int(
        session.scalar(
            select(func.count(Trial.id)).where(
                Trial.job_id == job_id, Trial.status == TrialStatus.COMPLETED
            )
        )
        or 0
    )
