"""A full disk, said as such: ENOSPC on a file or database write is a 507 naming the disk (not a
503 "retry shortly" that never gets better), and /healthz reports degraded while writes fail
or the data dir's disk is nearly full.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from app.api.problems import problem_response
from app.settings import Settings

logger = logging.getLogger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLite's SQLITE_FULL ("database or disk is full"); PostgreSQL's disk_full SQLSTATE class.
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
        return True
    if getattr(orig, "sqlstate", None) == POSTGRES_DISK_FULL:
        return True
    return "no space left on device" in str(orig).lower()


def _free_mb(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free >> 20
    except OSError:
        return None


class WriteHealth:
    """The outcome of the API's last write request, as its status code said it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failure: str | None = None

    def record(self, status: int) -> None:
        with self._lock:
            if status == 507:
                self.failure = "the last write failed: the disk is full"
            elif status < 500:
                self.failure = None


class RecordWrites:
    """ASGI middleware feeding WriteHealth from the status of each write request."""

    def __init__(self, app: Any, *, health: WriteHealth) -> None:
        self.app = app
        self.health = health

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.health.record(int(message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


def disk_full_response(settings: Settings, exc: BaseException) -> JSONResponse:
    where = settings.data_dir.resolve()
    free = _free_mb(where)
    on = getattr(exc, "filename", None) or where
    # The paths go to the log, for the operator: a client learns nothing of the server's
    # file system from an error (and its message may be shown to anyone).
    logger.error("disk full", extra={"path": str(on), "free_mb": free, "error": str(exc)})
    return problem_response(
        507,
        "Insufficient Storage",
        f"no space left on the service's data disk ({free} MB free); nothing was stored. "
        "The operator must free space there (or on the database's disk; the server's log "
        "names the path), then retry",
    )


def install_disk_fault_handlers(app: FastAPI, settings: Settings) -> None:
    """After app.api.problems' handlers: a disk-full OSError or database error is a 507; any
    other keeps its previous handler."""
    database_away = app.exception_handlers[OperationalError]
    unexpected = app.exception_handlers[Exception]

    async def _operational(request: Request, exc: Exception) -> Any:
        if is_disk_full(exc):
            return disk_full_response(settings, exc)
        return await database_away(request, exc)

    async def _os_error(request: Request, exc: Exception) -> Any:
        if is_disk_full(exc):
            return disk_full_response(settings, exc)
        return await unexpected(request, exc)

    app.add_exception_handler(OperationalError, _operational)
    app.add_exception_handler(OSError, _os_error)
    app.state.write_health = health = WriteHealth()
    app.add_middleware(RecordWrites, health=health)


def degraded_reasons(settings: Settings, health: WriteHealth) -> list[str]:
    """Why the service cannot take writes, empty when it can."""
    reasons = [health.failure] if health.failure else []
    free = _free_mb(settings.data_dir)
    if free is not None and free < settings.min_free_disk_mb:
        reasons.append(
            f"the data dir's disk has {free} MB free, below {settings.min_free_disk_mb} MB "
            "(TUNER_MIN_FREE_DISK_MB)"
        )
    return reasons
