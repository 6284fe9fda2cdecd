"""Writes trials and epochs to SQL as the search runs (one short transaction per event).

Every write is fenced on the job's lease (or, for a tuner of a parallel job, on its
slot's lease): a search whose worker lost the job (it stalled and another worker
took over) raises LeaseLost instead of writing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import keras_tuner as kt
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.search.overfitting import DEFAULT_PATIENCE, assess
from app.store.db import upsert, write_session
from app.store.models import Trial, TrialEpoch, TrialStatus, utcnow
from app.store.queue import Claim, SlotClaim
from app.store.slot_queue import holds

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_S = 0.5


class LeaseLost(kt.errors.FatalError):
    """This worker no longer holds the job; nothing more may be written for it.

    A FatalError, so KerasTuner ends the search instead of failing one trial.
    """


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class TrialRecorder:
    def __init__(
        self,
        engine: Engine,
        claim: Claim | SlotClaim,
        *,
        patience: int = DEFAULT_PATIENCE,
        outage_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.claim = claim
        self.outage_s = outage_s
        # Epochs of divergence that make a trial overfit (overfitting.overfitting_patience).
        self.patience = patience
        self._trial_pks: dict[str, int] = {}

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one fenced transaction, waiting out a database outage.

        While the database is away the search pauses here. The lease is ours for
        at most `outage_s`; after that another worker may have taken the job over,
        so the search ends (LeaseLost) rather than write over it.
        """
        deadline = time.monotonic() + self.outage_s
        while True:
            try:
                with write_session(self.engine) as session:
                    if not holds(session=session, claim=self.claim):
                        raise LeaseLost(
                            f"job {self.claim.job_id} is no longer held by {self.claim.worker_id}"
                        )
                    return work(session)
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() > deadline:
                    raise LeaseLost(f"the database was away too long: {exc}") from exc
                logger.warning("database unavailable; retrying", extra={"error": str(exc.orig)})
                time.sleep(RETRY_S)

    def trial_started(
        self, trial_id: str, hyperparameters: dict[str, Any], *, origin_job_id: str | None = None
    ) -> None:
        """`origin_job_id`: the job a warm-started trial's configuration came from."""

        def work(session: Session) -> int:
            pk = upsert(
                session,
                Trial,
                {
                    "job_id": self.claim.job_id,
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
                    "worker": self.claim.worker_id,
                    "origin": "search" if origin_job_id is None else "warm_start",
                    "origin_job_id": origin_job_id,
                    "fold_scores": None,
                },
                conflict=["job_id", "trial_id"],
                update=[
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
                ],
                returning=Trial.id,
            )
            # A trial that reruns after a resume starts its curve afresh.
            session.execute(delete(TrialEpoch).where(TrialEpoch.trial_pk == pk))
            return int(pk)

        self._trial_pks[trial_id] = self._write(work)

    def epoch_ended(
        self, trial_id: str, epoch: int, logs: dict[str, Any], learning_rate: float | None
    ) -> None:
        pk = self._trial_pks[trial_id]
        metrics = {k: finite(v) for k, v in logs.items() if k != "learning_rate"}

        def work(session: Session) -> None:
            upsert(
                session,
                TrialEpoch,
                {
                    "trial_pk": pk,
                    "epoch": epoch,
                    "loss": metrics.get("loss"),
                    "val_loss": metrics.get("val_loss"),
                    "learning_rate": finite(learning_rate),
                    "metrics": metrics,
                    "recorded_at": utcnow(),
                },
                conflict=["trial_pk", "epoch"],
                update=["loss", "val_loss", "learning_rate", "metrics", "recorded_at"],
            )
            # The curve's length, not the calls: with cross-validation each fold's epoch
            # rewrites the same (mean) row.
            recorded = select(func.count()).where(TrialEpoch.trial_pk == pk).scalar_subquery()
            session.execute(update(Trial).where(Trial.id == pk).values(epochs_run=recorded))

        self._write(work)

    def trial_ended(
        self,
        trial_id: str,
        *,
        status: str,
        score: float | None,
        best_epoch: int | None,
        stopped_early: bool,
        message: str | None,
        duration_s: float | None,
        pruned: bool = False,
        objectives: dict[str, float | None] | None = None,
        fold_scores: list[float | None] | None = None,
    ) -> None:
        """`objectives`: each objective's value, for a multi-objective job's trial;
        `fold_scores`: each fold's, for a cross-validated one."""
        pk = self._trial_pks.pop(trial_id)
        self._write(
            lambda session: _end(
                session,
                pk,
                self.patience,
                status=status,
                score=score,
                best_epoch=best_epoch,
                stopped_early=stopped_early,
                message=message,
                duration_s=duration_s,
                pruned=pruned,
                objectives=objectives,
                fold_scores=fold_scores,
            )
        )

    def completed_curves(self, metric: str) -> dict[str, list[tuple[int, float | None]]]:
        """Each COMPLETED trial's `metric` per epoch, as written here (pruning's peers)."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(Trial.trial_id, TrialEpoch.epoch, TrialEpoch.metrics)
                .join(TrialEpoch, TrialEpoch.trial_pk == Trial.id)
                .where(Trial.job_id == self.claim.job_id, Trial.status == TrialStatus.COMPLETED)
            ).all()
        curves: dict[str, list[tuple[int, float | None]]] = {}
        for trial_id, epoch, metrics in rows:
            curves.setdefault(trial_id, []).append((epoch, finite((metrics or {}).get(metric))))
        return curves

    def unreported_trials(self) -> list[str]:
        """Trials of the job still RUNNING in the database."""
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(Trial.trial_id).where(
                        Trial.job_id == self.claim.job_id, Trial.status == TrialStatus.RUNNING
                    )
                )
            )

    def trial_ended_elsewhere(
        self,
        trial_id: str,
        *,
        status: str,
        score: float | None,
        best_epoch: int | None,
        objectives: dict[str, float | None] | None = None,
    ) -> None:
        """A trial another process ran and ended, which it could not write down (it died
        between telling the oracle and the database): what the oracle knows of it."""

        def work(session: Session) -> None:
            pk = session.scalar(
                select(Trial.id).where(
                    Trial.job_id == self.claim.job_id,
                    Trial.trial_id == trial_id,
                    Trial.status == TrialStatus.RUNNING,
                )
            )
            if pk is not None:
                _end(
                    session,
                    pk,
                    self.patience,
                    status=status,
                    score=score,
                    best_epoch=best_epoch,
                    objectives=objectives,
                )

        self._write(work)

    def trial_abandoned(self, trial_id: str, message: str) -> None:
        """A trial whose process died and will not be rerun (a parallel job's chief gave
        its tuner up): FAILED with the reason."""

        def work(session: Session) -> None:
            session.execute(
                update(Trial)
                .where(
                    Trial.job_id == self.claim.job_id,
                    Trial.trial_id == trial_id,
                    Trial.status == TrialStatus.RUNNING,
                )
                .values(status=TrialStatus.FAILED, message=message, finished_at=utcnow())
            )

        self._write(work)


def _end(
    session: Session,
    pk: int,
    patience: int,
    *,
    status: str,
    score: float | None,
    best_epoch: int | None,
    stopped_early: bool = False,
    message: str | None = None,
    duration_s: float | None = None,
    pruned: bool = False,
    objectives: dict[str, float | None] | None = None,
    fold_scores: list[float | None] | None = None,
) -> None:
    """Write a trial's outcome, and judge its curve for overfitting. The defaults are
    for a trial whose process died before writing it down: its early stop, message and
    duration are not known."""
    curve = session.execute(
        select(TrialEpoch.epoch, TrialEpoch.loss, TrialEpoch.val_loss).where(
            TrialEpoch.trial_pk == pk
        )
    ).all()
    overfitting = assess([tuple(row) for row in curve], patience=patience, best_epoch=best_epoch)
    session.execute(
        update(Trial)
        .where(Trial.id == pk)
        .values(
            status=status,
            score=finite(score),
            best_epoch=best_epoch,
            stopped_early=stopped_early,
            pruned=pruned,
            message=message,
            finished_at=utcnow(),
            duration_s=duration_s,
            overfit_epoch=overfitting.overfit_epoch,
            generalization_gap=finite(overfitting.generalization_gap),
            objectives=objectives,
            fold_scores=None if fold_scores is None else [finite(s) for s in fold_scores],
        )
    )
