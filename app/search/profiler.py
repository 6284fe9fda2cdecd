"""Profiling an upload in a child process, bounded in time, memory and number.

Parsing and profiling a table is pandas/numpy work that holds the GIL for long
stretches: in the API's own process it slowed every other request, and what it
allocated the API kept. Each upload is profiled instead in a fresh process forked
from a forkserver that has pandas imported already (a fork costs milliseconds):

- memory: the child's address space may grow by at most `ProfileLimits.memory_bytes`
  (RLIMIT_AS); past it numpy and pandas raise MemoryError, answered as a 422.
- time: the child is killed after `ProfileLimits.timeout_s` of wall-clock time.
- number: at most `PROCESSES` children run at once; further uploads wait their turn.
- disconnect: the caller's `cancelled()` is polled, and a client that went away
  gets its child killed.

The API process itself holds, per upload, the copy buffer of `stream_to_temp` (1 MiB)
and the multipart parser's (Starlette spools the file part to disk past 1 MiB): its
memory does not grow with what the file unpacks to.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from app.errors import ProblemError
from app.search.dataset_error import DatasetError
from app.search.datasets import Profile, profile_frame, read_table
from app.search.table_readers import reason

logger = logging.getLogger(__name__)

PROCESSES = 2
POLL_S = 0.1
# Room the child needs above what the forkserver already mapped: thread stacks and
# malloc arenas are address space before they are memory.
BASE_ADDRESS_SPACE = 512 << 20
# Parsing and profiling copy a table a few times over (the parse, the rows with a target,
# one column as floats): the memory allowed per byte the upload cap allows.
MEMORY_PER_UPLOAD_BYTE = 4
DEFAULT_TIMEOUT_S = 120.0
# pandas' unpacked-bytes cap per byte of upload, for NPZ and Parquet (compressed formats).
UNPACKED_PER_UPLOAD_BYTE = 8

_slots = threading.BoundedSemaphore(PROCESSES)


@dataclass(frozen=True)
class ProfileLimits:
    max_rows: int
    max_columns: int
    max_unpacked_bytes: int
    memory_bytes: int
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def for_upload_cap(
        cls, max_upload_bytes: int, *, max_rows: int, max_columns: int
    ) -> ProfileLimits:
        return cls(
            max_rows=max_rows,
            max_columns=max_columns,
            max_unpacked_bytes=UNPACKED_PER_UPLOAD_BYTE * max_upload_bytes,
            memory_bytes=MEMORY_PER_UPLOAD_BYTE * max_upload_bytes,
        )


class ClientGone(ProblemError):
    def __init__(self) -> None:
        super().__init__(400, "the client disconnected during the upload", title="Disconnected")


def profile_table(
    path: Path, fmt: str, target: str, task: str | None, limits: ProfileLimits
) -> Profile:
    """Read and profile a stored upload, in whatever process calls it."""
    frame = read_table(
        path,
        fmt,
        max_unpacked_bytes=limits.max_unpacked_bytes,
        max_columns=limits.max_columns,
        max_rows=limits.max_rows,
    )
    if len(frame) > limits.max_rows:
        raise DatasetError(f"{len(frame)} rows is over the limit of {limits.max_rows}")
    if frame.shape[1] > limits.max_columns:
        raise DatasetError(f"{frame.shape[1]} columns is over the limit of {limits.max_columns}")
    return profile_frame(frame, target, task)


def profile_upload(
    path: Path,
    fmt: str,
    target: str,
    task: str | None,
    limits: ProfileLimits,
    *,
    cancelled: Callable[[], bool] = lambda: False,
) -> Profile:
    """`profile_table` in a bounded child process; its DatasetError is raised here."""
    deadline = time.monotonic() + limits.timeout_s
    while not _slots.acquire(timeout=POLL_S):
        if cancelled():
            raise ClientGone()
        if time.monotonic() > deadline:
            raise ProblemError(
                503, "the server is busy profiling other uploads; try again", title="Busy"
            )
    try:
        return _run_child(path, fmt, target, task, limits, cancelled, deadline)
    finally:
        _slots.release()


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    # Read when the forkserver starts (the first upload): later forks inherit pandas. With
    # "__main__" preloaded, a fork skips re-running the program's main script.
    context.set_forkserver_preload(["__main__", __name__, "pyarrow.parquet"])
    return context


def _run_child(
    path: Path,
    fmt: str,
    target: str,
    task: str | None,
    limits: ProfileLimits,
    cancelled: Callable[[], bool],
    deadline: float,
) -> Profile:
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main, args=(sender, path, fmt, target, task, limits), daemon=True
    )
    child.start()
    sender.close()
    try:
        while not receiver.poll(POLL_S):
            if not child.is_alive():
                if receiver.poll():  # it answered just before it exited
                    break
                child.join()
                raise DatasetError(
                    f"profiling the upload stopped (exit code {child.exitcode}); "
                    f"it may need more than the memory limit of {limits.memory_bytes >> 20} MB"
                )
            if cancelled():
                raise ClientGone()
            if time.monotonic() > deadline:
                raise DatasetError(
                    f"profiling the upload took longer than the limit of {limits.timeout_s:g} s"
                )
        return _answer(receiver.recv(), limits)
    except EOFError as exc:
        raise DatasetError("profiling the upload stopped without an answer") from exc
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()


def _answer(message: tuple[str, object, str], limits: ProfileLimits) -> Profile:
    kind, value, field = message
    if kind == "ok":
        assert isinstance(value, Profile)
        return value
    if kind == "memory":
        raise DatasetError(
            f"profiling the upload needs more than the memory limit of "
            f"{limits.memory_bytes >> 20} MB"
        )
    raise DatasetError(str(value), field=field)


def _limit_memory(extra_bytes: int) -> None:
    try:
        with open("/proc/self/status") as status:
            size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return  # not Linux: the time limit still holds
    limit = size_kb * 1024 + BASE_ADDRESS_SPACE + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child_main(
    sender: Connection, path: Path, fmt: str, target: str, task: str | None, limits: ProfileLimits
) -> None:
    _limit_memory(limits.memory_bytes)
    try:
        profile = profile_table(path, fmt, target, task, limits)
        sender.send(("ok", profile, ""))
    except DatasetError as exc:
        sender.send(("invalid", exc.detail, exc.field))
    except MemoryError:
        sender.send(("memory", None, ""))
    except Exception as exc:  # a reader's failure on hostile bytes is still the file's fault
        logger.warning("profiling failed", exc_info=True)
        sender.send(("invalid", f"the file could not be read: {reason(exc, path)}", "file"))
    finally:
        sender.close()
    os._exit(0)  # nothing of the forkserver's state is ours to clean up
