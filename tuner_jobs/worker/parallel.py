"""Tuner slots of parallel jobs: a worker runs one tuner, either for another worker's job
(Worker.execute_slot) or, once its own chief's tuner0 is out of trials, for a slot of its
own job that a dead tuner left open.

A slot of an "auto" job is lent: its tuner process ends between trials when a job waits
(RecycleProcess, tuner_jobs.search.runner), and the slot goes back OPEN instead of to a
fresh process, so this worker's next claim takes the waiting job."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError

from app.settings import Settings
from app.store.claims import Claim, SlotClaim
from app.store.worker_files import HEARTBEAT_FAILURES
from tuner_jobs.search.child import Role
from tuner_jobs.worker.database import WorkerDatabase
from tuner_jobs.worker.outcomes import (
    ChildExit,
    StopRequest,
    TunerAction,
    slot_record,
    takes_own_slot,
    tuner_action,
    tuner_goes_on,
)
from tuner_jobs.worker.processes import STOP_GRACE_S, SearchProcess, Spawner
from tuner_jobs.worker.shutdown import Shutdown

logger = logging.getLogger(__name__)


class SlotTender:
    """Keeps one tuner process on its slot: heartbeats the slot, replaces a recycled process,
    and hands the slot back with what the tuner's end means."""

    def __init__(
        self,
        *,
        database: WorkerDatabase,
        spawner: Spawner,
        shutdown: Shutdown,
        settings: Settings,
    ) -> None:
        self.database = database
        self.spawner = spawner
        self.shutdown = shutdown
        self.settings = settings

    def run_slot(self, slot: SlotClaim, log: dict[str, object]) -> None:
        """Run one tuner of another worker's parallel job until its oracle says it is done."""
        tuner: SearchProcess | None = self.spawner.spawn(Role.TUNER, slot)
        current: SlotClaim | None = slot
        while tuner is not None and current is not None:
            tuner.exited(self.settings.heartbeat_s, self.shutdown.wakeup())
            tuner, current = self.tend(current, tuner, log)

    def tend(
        self, slot: SlotClaim, tuner: SearchProcess, log: dict[str, object]
    ) -> tuple[SearchProcess | None, SlotClaim | None]:
        """Heartbeat a tuner's slot; when its process exits, record what it means. Returns
        the process and slot still to tend (None, None once the slot is handed back)."""
        if tuner.alive():
            try:
                beat = self.database.heartbeat(slot)
            except DBAPIError as exc:
                # The tuner trains on; the slot's lease runs out if the database stays away.
                logger.warning(
                    "slot heartbeat failed", extra={**log, "slot": slot.slot, "error": str(exc)}
                )
                self.database.count(HEARTBEAT_FAILURES)
                return tuner, slot
            action = tuner_action(beat, shutting_down=self.shutdown.is_set())
            if action is TunerAction.KILL:
                if tuner.stop_asked_at is None and not tuner.killed:
                    lost = {**log, "slot": slot.slot}
                    self.database.lease_lost(
                        slot.job_id, lost, what="slot lease", held_attempt=slot.chief_attempt
                    )
                tuner.kill()
            elif action is TunerAction.STOP:
                tuner.ask_stop()
            return tuner, slot
        ended = tuner.result()
        if tuner_goes_on(ended, stop_asked=tuner.stop_asked_at is not None):
            if self.lent_back(slot):
                # Between two trials, the tuner of an "auto" job saw a job waiting: this
                # worker takes that job (its next claim) and the slot waits, OPEN.
                self.finish(slot, ended, stopping=True, log=log)
                return None, None
            logger.info("tuner process recycled: %s", ended.message, extra=log)
            return self.spawner.spawn(Role.TUNER, slot), slot
        self.finish(slot, ended, stopping=False, log=log)
        return None, None

    def lent_back(self, slot: SlotClaim) -> bool:
        """Whether the slot goes back to its "auto" job now, a job waiting for this worker
        (asked again here: another worker may have taken that job since the tuner asked)."""
        return self.database.lent_slot_wanted(slot)

    def finish(
        self, slot: SlotClaim, ended: ChildExit, *, stopping: bool, log: dict[str, object]
    ) -> None:
        record = slot_record(
            ended, stopping=stopping, attempt=slot.attempt, max_attempts=self.settings.max_attempts
        )
        if record is None:  # the slot's lease is lost: it is someone else's to hand back
            lost = {**log, "slot": slot.slot}
            self.database.lease_lost(
                slot.job_id, lost, what="slot lease", held_attempt=slot.chief_attempt
            )
            return
        self.database.release_slot(slot, record, {**log, "slot": slot.slot})
        logger.info(
            "tuner slot %s", record.status, extra={**log, "slot": slot.slot, "error": record.error}
        )


class OwnSlot:
    """Beside a parallel job's chief: once the chief's own tuner (tuner0) has no more trials,
    this worker takes over a slot of the same job that is still open (its tuner died
    mid-trial), in a second process, as any free worker would."""

    def __init__(
        self, claim: Claim, chief: SearchProcess, tender: SlotTender, log: dict[str, object]
    ) -> None:
        self.claim = claim
        self.chief = chief
        self.tender = tender
        self.log = log
        self.tuner: SearchProcess | None = None
        self.slot: SlotClaim | None = None

    def after_beat(self, reason: StopRequest | None) -> None:
        """Run after each of the chief's heartbeats, with the job's stop reason so far."""
        if reason is not None and self.tuner is not None:
            self.tuner.ask_stop()
        if self.slot is not None and self.tuner is not None:
            self.tuner, self.slot = self.tender.tend(self.slot, self.tuner, self.log)
        if takes_own_slot(
            has_tuner=self.tuner is not None,
            reason=reason,
            chief_searched=self.chief.searched.is_set(),
        ):
            self.slot = self.tender.database.claim_own_slot(self.claim)
            if self.slot is not None:
                self.tuner = self.tender.spawner.spawn(Role.TUNER, self.slot)

    def close(self) -> None:
        """The chief is gone, so a tuner still running waits for an oracle that will never
        answer: let it end its epoch if it is stopping, else stop it now."""
        if self.tuner is None or self.slot is None:
            return
        if self.tuner.stop_asked_at is not None:
            self.tuner.join(timeout=STOP_GRACE_S)
        self.tuner.kill()
        self.tender.finish(self.slot, self.tuner.result(), stopping=True, log=self.log)
        self.tuner, self.slot = None, None
