"""Writes trials and epochs as the search runs, through the search process's gateway
(app.store.search_gateway.SearchDatabase: one short transaction per event).

Every write is fenced on the job's lease (or, for a tuner of a parallel job, on its
slot's lease): a search whose worker lost the job (it stalled and another worker
took over) raises LeaseLost instead of writing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import keras_tuner as kt

from app.search.overfitting import DEFAULT_PATIENCE, assess
from app.store.claims import Claim, ClaimLost, SlotClaim
from app.store.search_values import CurveJudge, EpochLosses, TrialEnd

if TYPE_CHECKING:
    from app.store.search_gateway import SearchDatabase


class LeaseLost(kt.errors.FatalError):
    """This worker no longer holds the job; nothing more may be written for it.

    A FatalError, so KerasTuner ends the search instead of failing one trial.
    """


@contextmanager
def claim_held() -> Iterator[None]:
    """The store's ClaimLost as KerasTuner must see it: a FatalError (LeaseLost)."""
    try:
        yield
    except ClaimLost as exc:
        raise LeaseLost(str(exc)) from exc


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class TrialRecorder:
    def __init__(self, database: SearchDatabase, *, patience: int = DEFAULT_PATIENCE) -> None:
        self.database = database
        # Epochs of divergence that make a trial overfit (overfitting.overfitting_patience).
        self.patience = patience

    @property
    def claim(self) -> Claim | SlotClaim:
        return self.database.claim

    def trial_started(
        self, trial_id: str, hyperparameters: dict[str, Any], *, origin_job_id: str | None = None
    ) -> None:
        """`origin_job_id`: the job a warm-started trial's configuration came from."""
        with claim_held():
            self.database.trial_started(trial_id, hyperparameters, origin_job_id=origin_job_id)

    def epoch_ended(
        self, trial_id: str, epoch: int, logs: dict[str, Any], learning_rate: float | None
    ) -> None:
        metrics = {k: finite(v) for k, v in logs.items() if k != "learning_rate"}
        with claim_held():
            self.database.epoch_ended(trial_id, epoch, metrics, finite(learning_rate))

    def folds_ended(self, trial_id: str, fold_scores: list[float | None]) -> None:
        """A cross-validated trial's scores of the folds it has finished so far."""
        scores = [finite(s) for s in fold_scores]
        with claim_held():
            self.database.folds_ended(trial_id, scores)

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
        end = TrialEnd(
            status=status,
            score=finite(score),
            best_epoch=best_epoch,
            stopped_early=stopped_early,
            message=message,
            duration_s=duration_s,
            pruned=pruned,
            objectives=objectives,
            fold_scores=None if fold_scores is None else [finite(s) for s in fold_scores],
        )
        with claim_held():
            self.database.trial_ended(trial_id, end, self._judge(best_epoch))

    def completed_curves(self, metric: str) -> dict[str, list[tuple[int, float | None]]]:
        """Each COMPLETED trial's `metric` per epoch, as written here (pruning's peers)."""
        curves: dict[str, list[tuple[int, float | None]]] = {}
        for trial_id, epoch, metrics in self.database.completed_epoch_metrics():
            curves.setdefault(trial_id, []).append((epoch, finite((metrics or {}).get(metric))))
        return curves

    def unreported_trials(self) -> list[str]:
        """Trials of the job still RUNNING in the database."""
        return self.database.unreported_trials()

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
        end = TrialEnd(
            status=status, score=finite(score), best_epoch=best_epoch, objectives=objectives
        )
        with claim_held():
            self.database.trial_ended_elsewhere(trial_id, end, self._judge(best_epoch))

    def trial_abandoned(self, trial_id: str, message: str) -> None:
        """A trial whose process died and will not be rerun (a parallel job's chief gave
        its tuner up): FAILED with the reason."""
        with claim_held():
            self.database.trial_abandoned(trial_id, message)

    def _judge(self, best_epoch: int | None) -> CurveJudge:
        """The trial's overfitting, judged on its curve as stored."""

        def judge(curve: list[EpochLosses]) -> tuple[int | None, float | None]:
            found = assess(curve, patience=self.patience, best_epoch=best_epoch)
            return found.overfit_epoch, finite(found.generalization_gap)

        return judge
