"""Typed errors: every failure the client reports is a TunerError carrying the server's
problem+json (`status`, `title`, `detail`, `errors`), never a bare httpx exception."""

from __future__ import annotations

from typing import Any

import httpx


class TunerError(Exception):
    """Base of every client error. `status` is None when no HTTP answer came back."""

    def __init__(
        self,
        title: str,
        detail: str,
        *,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.body = body or {}
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status is not None else ""
        return f"{prefix}{self.title}: {self.detail}"


class InvalidRequest(TunerError):
    """400, 413, 422: the request (spec, upload, rows) was refused; `errors` names the fields."""


class Unauthorized(TunerError):
    """401: missing or unknown API key (set api_key= or TUNER_API_KEY)."""


class NotFound(TunerError):
    """404: no such dataset, job or trial (or it belongs to another API key)."""


class Conflict(TunerError):
    """409: the resource's state forbids it (cancel a finished job, predict before success)."""


class AmbiguousId(TunerError):
    """A short id that starts more than one job or dataset id; `errors` names each one."""


class ServiceUnavailable(TunerError):
    """503: the service's database is unavailable for now; retrying later can succeed."""


class ServerError(TunerError):
    """Any other error status (5xx, or a 4xx the client has no class for)."""


class ConnectionFailed(TunerError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""


class JobFailed(TunerError):
    """`Client.wait` saw the job end `failed`; `job` is its final state, `detail` its error."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        super().__init__(f"job {job['id']} failed", job.get("error") or "no reason recorded")


class WaitTimeout(TunerError, TimeoutError):
    """`Client.wait` gave up before the job finished; `job` is its last state."""

    def __init__(self, job: dict[str, Any], timeout: float) -> None:
        self.job = job
        super().__init__(
            f"job {job['id']} still {job['status']}", f"not finished after {timeout:g}s"
        )


_BY_STATUS: dict[int, type[TunerError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
    503: ServiceUnavailable,
}


def error_from_response(response: httpx.Response) -> TunerError:
    """The typed error for an error response, from its problem+json when it has one."""
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass  # a proxy's HTML error page, say: fall back to the status line and text
    title = str(body.get("title") or response.reason_phrase or "HTTP error")
    detail = str(body.get("detail") or response.text.strip()[:500] or title)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    cls = _BY_STATUS.get(response.status_code, ServerError)
    return cls(title, detail, status=response.status_code, errors=errors, body=body)


def error_from_transport(exc: httpx.TransportError, url: str) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({type(exc).__name__})"
    return ConnectionFailed(f"cannot reach the tuner service at {url}", reason)
