"""A worker's shutdown flag, set by SIGTERM or SIGINT, that also wakes a waiting supervisor."""

from __future__ import annotations

import logging
import os
import signal
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
