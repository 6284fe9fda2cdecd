"""This worker's record in the data directory (app.store.worker_files): that it is alive, and
its counts of what went wrong, rewritten every heartbeat by a thread of its own, so that an
idle worker, one waiting on its search process and one waiting for the database all show."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from app.settings import Settings
from app.store.worker_files import (
    COUNTS,
    WorkerRecord,
    prune_records,
    remove_record,
    write_record,
)

logger = logging.getLogger(__name__)

# A record this old belongs to a worker that was killed and never came back.
PRUNE_AFTER_S = 24 * 3600.0


class Presence:
    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        now = time.time()
        self.record = WorkerRecord(
            worker_id=worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            beat_at=now,
            counts=dict.fromkeys(COUNTS, 0),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def count(self, what: str) -> None:
        self.record.counts[what] += 1

    def _write(self) -> None:
        self.record.beat_at = time.time()
        try:
            write_record(self.settings, self.record)
            self._failing = False
        except OSError as exc:
            if not self._failing:  # once per outage, not every beat
                logger.warning("cannot write this worker's record", extra={"error": str(exc)})
            self._failing = True

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            self._write()

    def start(self) -> None:
        try:
            prune_records(self.settings, older_than_s=PRUNE_AFTER_S)
        except OSError:
            pass  # the next worker to start prunes them
        self._write()
        self._thread = threading.Thread(target=self._beat, name="presence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            remove_record(self.settings, self.record.worker_id)
        except OSError:
            pass  # it goes stale, and the API counts it dead after a lease
