"""The search process's one door to the database: it owns the engine, and each thing the
search does there is one method and one transaction (the search child's counterpart of
the supervisor's tuner_jobs.worker.database.WorkerDatabase).

Every write is fenced on the claim (on the job's lease, or for a tuner of a parallel job on
its slot's): a search whose worker lost the job (it stalled and another worker took over)
gets ClaimLost instead of writing. While the database is away a write waits, for at most
`outage_s` (the lease): after that another worker may have taken the job over, so the
search ends (ClaimLost) rather than write over it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.claims import Claim, ClaimLost, SlotClaim
from app.store.db import make_engine
from app.store.job_results import record_end_of_search
from app.store.models import SlotStatus
from app.store.queue import lease_expiry
from app.store.search_reads import card_facts, search_job
from app.store.search_values import CardFacts, CurveJudge, SearchJob, TrialEnd, TunerSlot
from app.store.slot_queue import (
    close_slots,
    holds,
    job_slots,
    open_slots,
    slots_running,
    yields_to_waiting_job,
)
from app.store.trial_records import (
    abandon_trial,
    completed_epoch_metrics,
    end_trial,
    record_epoch,
    record_fold_scores,
    running_trial_ids,
    running_trial_pk,
    start_trial,
    trial_curve,
)
from app.store.unit_of_work import write_session

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_S = 0.5


class SearchDatabase:
    def __init__(self, engine: Engine, claim: Claim | SlotClaim, *, outage_s: float = 30.0) -> None:
        self.engine = engine
        self.claim = claim
        self.outage_s = outage_s
        # KerasTuner trial id -> its row's primary key, while the trial runs here.
        self._trial_pks: dict[str, int] = {}

    @classmethod
    def connect(cls, settings: Settings, claim: Claim | SlotClaim) -> SearchDatabase:
        """An engine of the search process's own; its writes wait out an outage up to the
        lease (settings.lease_s), as long as the lease is surely still the claim's."""
        engine = make_engine(
            settings.database_url,
            application_name="worker",
            busy_timeout_s=settings.sqlite_busy_timeout_s,
        )
        return cls(engine, claim, outage_s=settings.lease_s)

    def dispose(self) -> None:
        self.engine.dispose()

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one fenced transaction, waiting out a database outage."""
        deadline = time.monotonic() + self.outage_s
        while True:
            try:
                with write_session(self.engine) as session:
                    if not holds(session=session, claim=self.claim):
                        raise ClaimLost(
                            f"job {self.claim.job_id} is no longer held by {self.claim.worker_id}"
                        )
                    return work(session)
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() > deadline:
                    raise ClaimLost(f"the database was away too long: {exc}") from exc
                logger.warning("database unavailable; retrying", extra={"error": str(exc.orig)})
                time.sleep(RETRY_S)

    def _read(self, read: Callable[[Session], T]) -> T:
        with Session(self.engine) as session:
            return read(session)

    def _read_waiting(self, read: Callable[[Session], T]) -> T:
        """`read`, waiting out a database outage as a write does: what it reads goes into a
        file written now (the model card), which must not be left out or stale."""
        deadline = time.monotonic() + self.outage_s
        while True:
            try:
                return self._read(read)
            except (OperationalError, InterfaceError) as exc:
                if time.monotonic() > deadline:
                    raise ClaimLost(f"the database was away too long: {exc}") from exc
                logger.warning("database unavailable; retrying", extra={"error": str(exc.orig)})
                time.sleep(RETRY_S)

    # The job.

    def search_job(self) -> SearchJob:
        return self._read(lambda session: search_job(session=session, job_id=self.claim.job_id))

    def card_facts(self, trial_ids: list[str]) -> CardFacts:
        return self._read_waiting(
            lambda session: card_facts(
                session=session, job_id=self.claim.job_id, trial_ids=trial_ids
            )
        )

    def record_evaluation(
        self,
        *,
        baselines: dict[str, Any],
        test_metrics: dict[str, Any] | None,
        ensemble: dict[str, Any] | None,
        verdict: str | None,
    ) -> None:
        self._write(
            lambda session: record_end_of_search(
                session=session,
                job_id=self.claim.job_id,
                baselines=baselines,
                test_metrics=test_metrics,
                ensemble=ensemble,
                verdict=verdict,
            )
        )

    # Trials and epochs.

    def trial_started(
        self, trial_id: str, hyperparameters: dict[str, Any], *, origin_job_id: str | None
    ) -> None:
        self._trial_pks[trial_id] = self._write(
            lambda session: start_trial(
                session=session,
                claim=self.claim,
                trial_id=trial_id,
                hyperparameters=hyperparameters,
                origin_job_id=origin_job_id,
            )
        )

    def epoch_ended(
        self,
        trial_id: str,
        epoch: int,
        metrics: dict[str, float | None],
        learning_rate: float | None,
    ) -> None:
        pk = self._trial_pks[trial_id]
        self._write(
            lambda session: record_epoch(
                session=session,
                trial_pk=pk,
                epoch=epoch,
                metrics=metrics,
                learning_rate=learning_rate,
            )
        )

    def folds_ended(self, trial_id: str, fold_scores: list[float | None]) -> None:
        pk = self._trial_pks[trial_id]
        self._write(
            lambda session: record_fold_scores(
                session=session, trial_pk=pk, fold_scores=fold_scores
            )
        )

    def trial_ended(self, trial_id: str, end: TrialEnd, judge: CurveJudge) -> None:
        """`judge`: the overfitting read from the trial's stored curve, in the same
        transaction as the outcome's write."""
        pk = self._trial_pks.pop(trial_id)
        self._write(lambda session: _end(session, pk, end, judge))

    def trial_ended_elsewhere(self, trial_id: str, end: TrialEnd, judge: CurveJudge) -> None:
        """A trial another process ran and ended but could not write down: ended as `end`
        if it is still RUNNING in the database."""

        def work(session: Session) -> None:
            pk = running_trial_pk(session=session, job_id=self.claim.job_id, trial_id=trial_id)
            if pk is not None:
                _end(session, pk, end, judge)

        self._write(work)

    def trial_abandoned(self, trial_id: str, message: str) -> None:
        self._write(
            lambda session: abandon_trial(
                session=session, job_id=self.claim.job_id, trial_id=trial_id, message=message
            )
        )

    def completed_epoch_metrics(self) -> list[tuple[str, int, dict[str, Any] | None]]:
        return self._read(
            lambda session: completed_epoch_metrics(session=session, job_id=self.claim.job_id)
        )

    def unreported_trials(self) -> list[str]:
        """Trials of the job still RUNNING in the database (a chief's end: it waits out an
        outage, as its writes do)."""
        return self._read_waiting(
            lambda session: running_trial_ids(session=session, job_id=self.claim.job_id)
        )

    # A parallel job's chief (its claim is the job's) and tuners (theirs a slot's).

    def lease_expiry(self, *, while_away: datetime | None) -> datetime | None:
        """When the chief's lease runs out, as the job's row says now (None once it is not
        the claim's); `while_away` when the database cannot be read."""
        claim = self._chief_claim()
        try:
            return self._read(lambda session: lease_expiry(session=session, claim=claim))
        except DBAPIError:
            return while_away

    def open_slots(self, *, tuners: int, address: str) -> bool:
        """False: the lease is no longer the chief's."""
        claim = self._chief_claim()
        with write_session(self.engine) as session:
            return open_slots(session=session, claim=claim, tuners=tuners, address=address)

    def tuner_slots(self) -> list[TunerSlot]:
        """The slots this chief opened. Read on the chief's own path too (its search's end),
        so it waits out an outage as a write does: a database away for seconds when the
        chief's own trials run out must not fail the job."""
        claim = self._chief_claim()
        slots = self._read_waiting(
            lambda session: job_slots(
                session=session, job_id=claim.job_id, chief_attempt=claim.attempt
            )
        )
        return [
            TunerSlot(
                slot=slot.slot,
                tuner_id=slot.tuner_id,
                failed=slot.status == SlotStatus.FAILED,
                error=slot.error,
            )
            for slot in slots
        ]

    def close_slots(self, slots: list[int]) -> None:
        claim = self._chief_claim()
        self._write(lambda session: close_slots(session=session, claim=claim, slots=slots))

    def slots_running(self) -> int:
        return self._read_waiting(
            lambda session: slots_running(session=session, job_id=self.claim.job_id)
        )

    def yields_to_waiting_job(self) -> bool:
        """For a tuner on a slot lent to an "auto" job: whether a job waits for it. False
        while the database is away (the tuner goes on; its writes wait the outage out)."""
        claim = self.claim
        assert isinstance(claim, SlotClaim)
        try:
            return self._read(lambda session: yields_to_waiting_job(session=session, claim=claim))
        except DBAPIError:
            return False

    def _chief_claim(self) -> Claim:
        assert isinstance(self.claim, Claim), "only a parallel job's chief holds the job"
        return self.claim


def _end(session: Session, pk: int, end: TrialEnd, judge: CurveJudge) -> None:
    overfit_epoch, gap = judge(trial_curve(session=session, trial_pk=pk))
    end_trial(
        session=session,
        trial_pk=pk,
        end=end,
        overfit_epoch=overfit_epoch,
        generalization_gap=gap,
    )
