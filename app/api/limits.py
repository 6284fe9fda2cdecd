"""Request body caps, enforced on the raw request stream before anything parses the body.

- Uploads (`TUNER_MAX_UPLOAD_MB`): Starlette spools a multipart file part to disk before
  the route sees it and caps nothing, so an oversized upload would fill the disk.
- Every other body is JSON (`TUNER_MAX_JSON_KB`: a job spec, predict rows), read whole
  into memory and parsed before validation runs: without a cap, a 42 MB spec is parsed,
  stored, and sent back in every list.

Both answer 413 from a Content-Length over the cap at once, and otherwise count the body
as it arrives (chunked, or a Content-Length that lied) and stop the app reading it.

And one cap on concurrency: predictions in flight per API key (PerKeyConcurrency, 429).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers

from app.api.problems import problem_response
from app.keys import Keyring

# Multipart framing (boundaries, part headers, the other form fields) on top of the file.
MULTIPART_OVERHEAD = 64 * 1024

Scope = dict[str, Any]


class _BodyTooLarge(Exception):
    """The body grew past the cap while the app was reading it."""


async def _capped(
    app: Any, scope: Scope, receive: Any, send: Any, cap: int, too_large: Any
) -> None:
    """Run `app` on a body of at most `cap` bytes; past it, answer `too_large` instead."""
    declared = dict(scope.get("headers") or []).get(b"content-length", b"").decode()
    if declared.isdigit() and int(declared) > cap:
        await too_large(scope, receive, send)
        return
    received = 0
    exceeded = False
    started = False

    async def counting_receive() -> dict[str, Any]:
        nonlocal received, exceeded
        if exceeded:
            raise _BodyTooLarge
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                exceeded = True
                # Raised, not a truncated body: a prefix of a JSON body may parse, and the
                # route would act on it (a job submitted) before its answer is replaced.
                raise _BodyTooLarge
        return message

    async def guarded_send(message: dict[str, Any]) -> None:
        nonlocal started
        if exceeded:
            return  # the app's answer to the cut-off body is replaced below
        started = True
        await send(message)

    try:
        await app(scope, counting_receive, guarded_send)
    except _BodyTooLarge:
        pass  # FastAPI usually turns it into a 400 first, which guarded_send drops
    if exceeded and not started:
        await too_large(scope, receive, send)


class UploadLimit:
    """ASGI middleware: the upload cap, on POSTs to `paths`."""

    def __init__(self, app: Any, *, max_bytes: int, paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + MULTIPART_OVERHEAD
        self.paths = paths
        self.too_large = problem_response(
            413,
            "Upload too large",
            f"the upload is larger than the limit of {max_bytes // (1 << 20)} MB",
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        await _capped(self.app, scope, receive, send, self.limit, self.too_large)


class JsonBodyLimit:
    """ASGI middleware: the JSON body cap, on every path but `exclude` (the uploads)."""

    def __init__(self, app: Any, *, max_bytes: int, exclude: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exclude = exclude
        self.too_large = problem_response(
            413,
            "Request body too large",
            f"the request body is larger than the limit of {max_bytes // 1024} KB "
            "(TUNER_MAX_JSON_KB)",
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exclude:
            await self.app(scope, receive, send)
            return
        await _capped(self.app, scope, receive, send, self.max_bytes, self.too_large)


class PerKeyConcurrency:
    """ASGI middleware: at most `limit` requests of one API key at once on POSTs to paths
    matching `pattern` (the predictions), a 429 with Retry-After past it, answered before
    the body is read. One key's burst then costs the others nothing: without it every
    request waited its turn at the prediction process, holding a thread of the pool the
    other routes run in. Without keys every caller is one key."""

    def __init__(
        self,
        app: Any,
        *,
        limit: int,
        pattern: re.Pattern[str],
        keyring: Keyring | None,
        retry_after_s: int = 1,
    ) -> None:
        self.app = app
        self.limit = limit
        self.pattern = pattern
        self.keyring = keyring
        # Runs on the event loop only: a plain dict needs no lock.
        self.in_flight: dict[str | None, int] = {}
        self.busy = problem_response(
            429,
            "Too many predictions at once",
            f"this API key already has {limit} predictions in flight "
            "(TUNER_MAX_PREDICTIONS_PER_KEY); retry when one has answered",
            headers={"Retry-After": str(retry_after_s)},
        )

    def _key(self, scope: Scope) -> str | None:
        if self.keyring is None:
            return None
        _scheme, key = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
        return self.keyring.owner_of(key)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not self.pattern.fullmatch(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        if self.in_flight.get(key, 0) >= self.limit:
            await self.busy(scope, receive, send)
            return
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]
