"""Uploads being received: how many at once, how long they may stall, and where they wait.

FastAPI parses a multipart body before the route runs, with Starlette's parser, which
keeps each file part in memory up to 1 MiB (SpooledTemporaryFile) before it moves to
disk. A slow upload held that buffer for as long as it trickled in, any number of them at
once, and the allocator kept the memory when they closed. Here, before FastAPI reads it:

- number: at most TUNER_MAX_UPLOADS_PER_KEY uploads of one API key, and TUNER_MAX_UPLOADS
  in all, are received at once; past either, a 429 with Retry-After, before a byte of the
  body is read (without keys every caller is one key).
- stall: an upload that sends nothing for TUNER_UPLOAD_STALL_S is answered 408 and dropped.
- memory: the body is parsed here, with a file part kept in memory only up to SPOOL_BYTES
  before it moves to disk; FastAPI takes the parsed form as its own. When the last upload
  in progress ends, malloc gives its free memory back to the system (malloc_trim): what
  the uploads' buffers freed is otherwise kept by the process, scattered between live
  allocations.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from functools import cache
from typing import Any

import anyio
from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from starlette.formparsers import MultiPartException, MultiPartParser

from app.errors import ProblemError
from app.keys import Keyring
from app.settings import Settings

logger = logging.getLogger(__name__)

# Small enough that the buffers of every upload allowed at once stay small, and under
# malloc's mmap threshold's default, so they come from (and go back to) the heap's free
# lists rather than each mapping and keeping a megabyte.
SPOOL_BYTES = 64 * 1024
# The upload form's text fields (target, name, task...): short strings.
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 16
RETRY_AFTER_S = 5

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _SmallSpoolParser(MultiPartParser):
    spool_max_size = SPOOL_BYTES


class UploadSlots:
    """Uploads in progress, by key. Used on the event loop only: a plain dict needs no lock."""

    def __init__(self, settings: Settings) -> None:
        self.per_key = settings.max_uploads_per_key
        self.total = settings.max_uploads
        self.stall_s = settings.upload_stall_s
        self.in_flight: dict[str | None, int] = {}

    def take(self, key: str | None) -> None:
        mine = self.in_flight.get(key, 0)
        if mine >= self.per_key:
            raise _busy(
                f"this API key already has {mine} uploads in progress, the most "
                f"allowed (TUNER_MAX_UPLOADS_PER_KEY={self.per_key})"
            )
        if sum(self.in_flight.values()) >= self.total:
            raise _busy(
                f"the service is receiving {self.total} uploads, the most it takes at "
                f"once (TUNER_MAX_UPLOADS={self.total})"
            )
        self.in_flight[key] = mine + 1

    def give_back(self, key: str | None) -> None:
        self.in_flight[key] -= 1
        if not self.in_flight[key]:
            del self.in_flight[key]
        if not self.in_flight:
            _trim()


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def _trim() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _busy(detail: str) -> ProblemError:
    return ProblemError(
        429,
        f"{detail}; retry when one has finished",
        title="Too many uploads",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _slots(request: Request) -> UploadSlots:
    state = request.app.state
    if getattr(state, "upload_slots", None) is None:
        state.upload_slots = UploadSlots(state.settings)
    slots: UploadSlots = state.upload_slots
    return slots


def _key(request: Request) -> str | None:
    keyring: Keyring | None = request.app.state.keyring
    if keyring is None:
        return None
    _scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    return keyring.owner_of(key)


async def _body(request: Request, stall_s: float) -> AsyncGenerator[bytes, None]:
    """The request's body, chunk by chunk; a 408 when nothing arrives for `stall_s`."""
    while True:
        try:
            with anyio.fail_after(stall_s):
                message = await request.receive()
        except TimeoutError:
            raise ProblemError(
                408,
                f"the upload sent nothing for {stall_s:g} s (TUNER_UPLOAD_STALL_S); send it again",
                title="Upload stalled",
            ) from None
        if message["type"] == "http.disconnect":
            raise ProblemError(
                400, "the client disconnected during the upload", title="Disconnected"
            )
        if body := message.get("body", b""):
            yield body
        if not message.get("more_body", False):
            return


async def _parse_form(request: Request, stall_s: float) -> None:
    """Parse the multipart body into the request's form, where FastAPI looks for it first."""
    parser = _SmallSpoolParser(
        request.headers,
        _body(request, stall_s),
        max_files=1,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ProblemError(400, f"malformed multipart body: {exc.message}") from exc
    request._form = form  # Starlette's cache of the parsed form: request.form() returns it


class UploadRoute(APIRoute):
    """A route whose POST is an upload: gated and parsed as above before FastAPI runs it."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if "POST" not in self.methods:
            return handler

        async def gated(request: Request) -> Response:
            slots = _slots(request)
            key = _key(request)
            slots.take(key)
            try:
                content_type = request.headers.get("content-type", "")
                if content_type.startswith("multipart/form-data"):
                    await _parse_form(request, slots.stall_s)
                return await handler(request)
            finally:
                slots.give_back(key)

        return gated
