"""Upload size cap, enforced on the raw request stream.

Starlette spools a multipart file part to disk before the route sees it and caps
nothing; this ASGI middleware counts the body as it arrives and answers 413 as
soon as the limit is passed, so an oversized upload never fills the disk.
"""

from __future__ import annotations

from typing import Any

from app.api.problems import problem_response

# Multipart framing (boundaries, part headers, the other form fields) on top of the file.
MULTIPART_OVERHEAD = 64 * 1024

Scope = dict[str, Any]


class UploadLimit:
    def __init__(self, app: Any, *, max_bytes: int, paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + MULTIPART_OVERHEAD
        self.paths = paths

    def _too_large(self) -> Any:
        return problem_response(
            413,
            "Upload too large",
            f"the upload is larger than the limit of {self.max_bytes // (1 << 20)} MB",
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode() or "0"
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large()(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:  # stop feeding the parser; it sees an end of body
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a truncated body is replaced below
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            pass  # FastAPI usually turns it into a 400 first, which guarded_send drops
        if exceeded and not started:
            await self._too_large()(scope, receive, send)


# --- JSON bodies (TUNER_MAX_JSON_KB) ---------------------------------------------------
#
# Every other request body is JSON (a job spec, predict rows), read whole into memory and
# parsed before validation runs: without a cap, a 42 MB spec is parsed, stored, and sent
# back in every list. Counted as it streams in, like the upload cap above.


class _BodyTooLarge(Exception):
    """The body grew past the limit while the app was reading it."""


class JsonBodyLimit:
    def __init__(self, app: Any, *, max_bytes: int, exclude: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exclude = exclude  # the upload paths, capped by UploadLimit instead

    def _too_large(self) -> Any:
        return problem_response(
            413,
            "Request body too large",
            f"the request body is larger than the limit of {self.max_bytes // 1024} KB "
            "(TUNER_MAX_JSON_KB)",
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exclude:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").decode()
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
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
                if received > self.max_bytes:  # chunked, or a Content-Length that lied
                    exceeded = True
                    # Raised, not a truncated body: a prefix of the JSON may parse, and the
                    # route would act on it (a job submitted) before its answer is replaced.
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to the truncated body is replaced below
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            pass  # FastAPI usually turns it into a 400 first, which guarded_send drops
        if exceeded and not started:
            await self._too_large()(scope, receive, send)
