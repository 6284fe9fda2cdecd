"""`serve`'s workers: started beside the API, watched, and restarted when one exits.

A worker that dies (kill -9, the kernel's out-of-memory killer, a crash) or is stopped
(SIGTERM) while `serve` runs is reaped at once, logged with how it ended, and replaced
after a backoff that doubles while replacements keep dying young. The job it held resumes
on the replacement (or any other worker) once its lease expires; a job it handed back on
SIGTERM is simply queued. Restarts are counted for GET /metrics (the API runs in this
process under `serve`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

logger = logging.getLogger("tuner_service")

# Backoff between a worker's death and its replacement: doubled each time a replacement
# dies within STABLE_S of starting, back to the first step once one lived that long.
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
STABLE_S = 60.0
# How often the supervising thread looks at its workers.
CHECK_S = 0.25
STOP_WAIT_S = 90.0


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


class _Slot:
    """One of the pool's places: the worker process in it, and when to restart it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.backoff_s = FIRST_BACKOFF_S
        self.restart_at: float | None = None


class WorkerPool:
    def __init__(self, program: Sequence[str], count: int, env: dict[str, str]) -> None:
        self.program = list(program)
        self.env = env
        self.slots = [_Slot() for _ in range(count)]
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="worker-pool", daemon=True)

    def _start(self, slot: _Slot) -> None:
        # The worker shuts itself down when this process dies, even by kill -9. Its own
        # session: a Ctrl-C at the terminal reaches `serve` alone, which stops its workers
        # itself (stop()), rather than racing the pool to restart them.
        command = [*self.program, "--die-with", str(os.getpid())]
        slot.process = subprocess.Popen(command, env=self.env, start_new_session=True)
        slot.started_at = time.monotonic()
        slot.restart_at = None

    def start(self) -> None:
        for slot in self.slots:
            self._start(slot)
        self._thread.start()

    def alive(self) -> int:
        return sum(s.process is not None and s.process.poll() is None for s in self.slots)

    def check(self) -> None:
        """Reap workers that ended; restart those whose backoff has passed."""
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and slot.restart_at is None:
                code = process.poll()  # reaps it: no zombie is left
                if code is None:
                    continue
                lived = now - slot.started_at
                if lived >= STABLE_S:
                    slot.backoff_s = FIRST_BACKOFF_S
                slot.restart_at = now + slot.backoff_s
                logger.warning(
                    "worker %d %s after %.0f s; restarting it in %.0f s",
                    process.pid,
                    how_it_ended(code),
                    lived,
                    slot.backoff_s,
                    extra={"pid": process.pid, "returncode": code},
                )
                slot.backoff_s = min(MAX_BACKOFF_S, slot.backoff_s * 2)
            if slot.restart_at is not None and now >= slot.restart_at and not self._stop.is_set():
                self._start(slot)
                self.restarts += 1
                assert slot.process is not None
                logger.info(
                    "worker restarted", extra={"pid": slot.process.pid, "restarts": self.restarts}
                )

    def _supervise(self) -> None:
        while not self._stop.wait(CHECK_S):
            try:
                self.check()
            except Exception:  # a failed restart is retried at the next check
                logger.exception("worker supervision failed")

    def stop(self) -> None:
        """Stop restarting, then stop every worker gracefully (each hands its job back)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        processes = [s.process for s in self.slots if s.process is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The pool `serve` runs, for the API in the same process (GET /metrics); None elsewhere.
_running: WorkerPool | None = None


def set_running(pool: WorkerPool | None) -> None:
    global _running
    _running = pool


def running() -> WorkerPool | None:
    return _running
