"""A worker's shutdown flag, set by SIGTERM or SIGINT, that also wakes a waiting supervisor."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)


class Shutdown:
    """Set on SIGTERM or SIGINT. While unset it also offers a pipe that becomes readable
    when it is set, so a supervisor waiting on its child wakes at once and asks the
    search to stop at its next epoch, not at its next heartbeat."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def set(self) -> None:
        self._event.set()
        try:
            os.write(self._write, b"!")  # safe in a signal handler
        except OSError:
            pass  # already readable

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def wakeup(self) -> list[int]:
        """What to add to a wait() so that it ends when this is set (nothing once it is:
        the pipe stays readable)."""
        return [] if self.is_set() else [self._read]

    def install_signal_handlers(self) -> None:
        def _graceful(signum: int, _frame: object) -> None:
            logger.info("shutting down after the current epoch", extra={"signal": signum})
            self.set()

        signal.signal(signal.SIGTERM, _graceful)
        signal.signal(signal.SIGINT, _graceful)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with(parent: int) -> None:
    """SIGTERM this process (a graceful shutdown) when `parent` dies, even by kill -9, so a
    worker never outlives the `serve` that started it (Linux only; elsewhere nothing).

    Set by the worker itself rather than in a preexec_fn: `serve` restarts workers from a
    thread, and running Python between fork and exec in a threaded process can deadlock.
    The kernel sends it when the *thread* that started this process ends; serve's threads
    that start workers live as long as it does."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the prctl: nobody will send the signal
        os.kill(os.getpid(), signal.SIGTERM)
