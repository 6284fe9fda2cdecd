"""Profiling an upload in a child process, bounded in time, memory and number.

Parsing and profiling a table is pandas/numpy work that holds the GIL for long
stretches: in the API's own process it slowed every other request, and what it
allocated the API kept. Each upload is profiled instead in a fresh process forked
from a forkserver that has pandas imported already (a fork costs milliseconds):

- memory: the child's address space may grow by at most `ProfileLimits.memory_bytes`
  (RLIMIT_AS, TUNER_PROFILE_MEMORY_MB); past it numpy and pandas raise MemoryError,
  answered as a 422 that says how many values the table holds. The child allocates
  through malloc only: pyarrow's default pool (mimalloc) reserves address space by the
  gigabyte on first use (pandas builds its string columns with it), and that reservation,
  not the table, used up the cap.
- time: the child is killed after `ProfileLimits.timeout_s` of wall-clock time.
- number: at most `PROCESSES` children run at once; further uploads wait their turn.
- disconnect: the caller's `cancelled()` is polled, and a client that went away
  gets its child killed.

The API process itself holds, per upload, the copy buffer of `stream_to_temp` (1 MiB)
and the multipart parser's (the file part goes to disk past 64 KiB, app.api.upload_gate):
its memory does not grow with what the file unpacks to.
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
from typing import Any

import pandas as pd

from app.errors import DatasetError, ProblemError
from app.search.column_checks import check_width
from app.search.table_profiles import (
    Profile,
    input_names,
    profile_frame,
    profile_inputs,
    profile_target,
    read_table,
)
from app.search.table_readers import CsvTable, reason, table_size

logger = logging.getLogger(__name__)

PROCESSES = 2
POLL_S = 0.1
# Room the child needs above what the forkserver already mapped: thread stacks and
# malloc arenas are address space before they are memory.
BASE_ADDRESS_SPACE = 512 << 20
# Parsing and profiling copy a table a few times over (the parse, the rows with a target,
# one column as floats): the memory allowed per byte the upload cap allows, unless
# TUNER_PROFILE_MEMORY_MB says otherwise.
MEMORY_PER_UPLOAD_BYTE = 4
DEFAULT_TIMEOUT_S = 120.0
# Address space a CSV parse takes per value (rows x columns) at its peak: the tokenizer's
# fields, each block's arrays and their concatenation. A table over the memory limit at
# this rate is read a few columns at a time.
PARSE_BYTES_PER_VALUE = 64
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
    max_features: int | None = None

    @classmethod
    def for_upload_cap(
        cls,
        max_upload_bytes: int,
        *,
        max_rows: int,
        max_columns: int,
        memory_bytes: int | None = None,
        max_features: int | None = None,
    ) -> ProfileLimits:
        return cls(
            max_rows=max_rows,
            max_columns=max_columns,
            max_unpacked_bytes=UNPACKED_PER_UPLOAD_BYTE * max_upload_bytes,
            memory_bytes=memory_bytes or MEMORY_PER_UPLOAD_BYTE * max_upload_bytes,
            max_features=max_features,
        )


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile: the stored upload, its target, and the caller's task choices."""

    path: Path
    fmt: str
    target: str
    task: str | None = None
    allow_many_classes: bool = False


class ClientGone(ProblemError):
    def __init__(self) -> None:
        super().__init__(400, "the client disconnected during the upload", title="Disconnected")


def profile_table(request: ProfileRequest, limits: ProfileLimits) -> Profile:
    """Read and profile a stored upload, in whatever process calls it."""
    if request.fmt == "csv":
        return _profile_csv(request, limits)
    frame = read_table(
        request.path,
        request.fmt,
        max_unpacked_bytes=limits.max_unpacked_bytes,
        max_columns=limits.max_columns,
        max_rows=limits.max_rows,
    )
    return _profile_whole(frame, request, limits)


def _profile_whole(frame: pd.DataFrame, request: ProfileRequest, limits: ProfileLimits) -> Profile:
    _check_rows(len(frame), limits)
    if frame.shape[1] > limits.max_columns:
        raise DatasetError(f"{frame.shape[1]} columns is over the limit of {limits.max_columns}")
    return profile_frame(
        frame,
        request.target,
        request.task,
        allow_many_classes=request.allow_many_classes,
        max_features=limits.max_features,
    )


def _check_rows(rows: int, limits: ProfileLimits) -> None:
    if rows > limits.max_rows:
        raise DatasetError(f"{rows} rows is over the limit of {limits.max_rows}")


def _profile_csv(request: ProfileRequest, limits: ProfileLimits) -> Profile:
    """A CSV whole when its parse fits the memory limit, else a few columns at a time: a
    table parsed takes memory by its values, and a file of short numbers within the upload
    cap holds more than the limit fits at once."""
    table = CsvTable.open(request.path, max_columns=limits.max_columns, max_rows=limits.max_rows)
    size = table_size(request.path, "csv")
    rows = max(size[0] if size else 0, 1)
    per_read = max(1, limits.memory_bytes // (PARSE_BYTES_PER_VALUE * rows))
    names = table.names()
    if len(names) <= per_read:
        return _profile_whole(table.read(), request, limits)
    inputs = input_names(names, request.target)
    position = {name: i for i, name in enumerate(names)}
    target = table.read([position[request.target]]).iloc[:, 0]
    if target.empty:
        raise DatasetError("the file has no data rows")
    _check_rows(len(target), limits)
    y = profile_target(
        target, request.target, request.task, allow_many_classes=request.allow_many_classes
    )
    del target
    columns: list[dict[str, Any]] = []
    for start in range(0, len(inputs), per_read):
        group = inputs[start : start + per_read]
        part = table.read([position[name] for name in group])
        part.columns = [str(c) for c in part.columns]
        columns += profile_inputs(part, group, y.kept)
        del part
    check_width(columns, limits.max_features)
    return y.profile(columns)


def profile_upload(
    request: ProfileRequest,
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
        return _run_child(request, limits, cancelled, deadline)
    finally:
        _slots.release()


def forkserver_context() -> multiprocessing.context.BaseContext:
    """The API process's one forkserver (Python has one per process), which the profiling
    children and the prediction process (app.api.predictor) are forked from."""
    context = multiprocessing.get_context("forkserver")
    # Read when the forkserver starts (the first upload or prediction): later forks inherit
    # pandas. With "__main__" preloaded, a fork skips re-running the program's main script.
    # Never TensorFlow: what the server maps, every profiling child starts with, and its
    # memory cap counts (_limit_memory).
    context.set_forkserver_preload(["__main__", __name__, "pyarrow.parquet"])
    return context


def _run_child(
    request: ProfileRequest,
    limits: ProfileLimits,
    cancelled: Callable[[], bool],
    deadline: float,
) -> Profile:
    context = forkserver_context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, request, limits), daemon=True)
    child.start()
    sender.close()
    try:
        while not receiver.poll(POLL_S):
            if not child.is_alive():
                if receiver.poll():  # it answered just before it exited
                    break
                child.join()
                raise DatasetError(
                    f"profiling the upload stopped (exit code {child.exitcode}); it may need "
                    f"more than {over_memory(request, limits)}"
                )
            if cancelled():
                raise ClientGone()
            if time.monotonic() > deadline:
                raise DatasetError(
                    f"profiling the upload took longer than the limit of {limits.timeout_s:g} s"
                )
        return _answer(receiver.recv(), request, limits)
    except EOFError as exc:
        raise DatasetError("profiling the upload stopped without an answer") from exc
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()


def _answer(
    message: tuple[str, object, str], request: ProfileRequest, limits: ProfileLimits
) -> Profile:
    kind, value, field = message
    if kind == "ok":
        assert isinstance(value, Profile)
        return value
    if kind == "memory":
        raise DatasetError(f"profiling the upload needs more than {over_memory(request, limits)}")
    raise DatasetError(str(value), field=field)


def over_memory(request: ProfileRequest, limits: ProfileLimits) -> str:
    """The memory limit, and what the table holds, for a refusal: parsed, a table takes
    memory by its values (rows x columns), not by the bytes of its file."""
    size = table_size(request.path, request.fmt)
    held = (
        f"; the table holds about {size[0] * size[1]:,} values ({size[0]:,} rows x "
        f"{size[1]:,} columns): upload fewer rows or columns, or raise the limit"
        if size is not None
        else ""
    )
    return f"the memory limit of {limits.memory_bytes >> 20} MB (TUNER_PROFILE_MEMORY_MB){held}"


def _limit_memory(extra_bytes: int) -> None:
    try:
        with open("/proc/self/status") as status:
            size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return  # not Linux: the time limit still holds
    limit = size_kb * 1024 + BASE_ADDRESS_SPACE + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child_main(sender: Connection, request: ProfileRequest, limits: ProfileLimits) -> None:
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    _limit_memory(limits.memory_bytes)
    try:
        profile = profile_table(request, limits)
        sender.send(("ok", profile, ""))
    except DatasetError as exc:
        sender.send(("invalid", exc.detail, exc.field))
    except MemoryError:
        sender.send(("memory", None, ""))
    except Exception as exc:  # a reader's failure on hostile bytes is still the file's fault
        logger.warning("profiling failed", exc_info=True)
        message = f"the file could not be read: {reason(exc, request.path)}"
        sender.send(("invalid", message, "file"))
    finally:
        sender.close()
    os._exit(0)  # nothing of the forkserver's state is ours to clean up
