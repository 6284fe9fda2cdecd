"""The API's side of the keys: who is calling, and who may scrape GET /metrics. The keys
themselves (TUNER_API_KEYS, owner ids) are app.keys'; what a caller may read is decided by
app.store.reads.readable, with its owner id in the WHERE clause."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers

from app.api.problems import problem_response
from app.errors import ProblemError
from app.keys import Keyring

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

# One answer for a missing, malformed or unknown key: the client learns nothing about why.
UNAUTHORIZED_TITLE = "Unauthorized"
UNAUTHORIZED_DETAIL = "a valid API key is required: Authorization: Bearer <key>"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


class Unauthorized(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            401, UNAUTHORIZED_DETAIL, title=UNAUTHORIZED_TITLE, headers=UNAUTHORIZED_HEADERS
        )


BEARER = HTTPBearer(
    auto_error=False,
    description="An API key, when the service is started with TUNER_API_KEYS",
)


async def get_owner(  # async: a hash and a compare, no reason for a thread-pool hop
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> str | None:
    """The caller's owner id; None when the service runs without keys (every row visible)."""
    keyring: Keyring | None = request.app.state.keyring
    if keyring is None:
        return None
    owner = keyring.owner_of(credentials.credentials if credentials else None)
    if owner is None:
        raise Unauthorized()
    return owner


OwnerDep = Annotated[str | None, Depends(get_owner)]


class RejectUnauthenticated:
    """ASGI middleware: a 401 for an /api/v1 request without a valid key, before its body is
    read. FastAPI parses a form before it runs dependencies, so without this gate anyone
    could make the API spool an upload of up to TUNER_MAX_UPLOAD_MB. `get_owner` still
    decides who the caller is; this only turns strangers away early."""

    def __init__(self, app: Any, *, keyring: Keyring) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            scheme, key = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
            if scheme.lower() != "bearer" or self.keyring.owner_of(key) is None:
                response = problem_response(
                    401, UNAUTHORIZED_TITLE, UNAUTHORIZED_DETAIL, headers=UNAUTHORIZED_HEADERS
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def require_metrics_access(request: Request) -> None:
    """Who may scrape GET /metrics: anyone without keys; with TUNER_METRICS_TOKEN, that bearer
    token only (scrapers need no tenant's key, tenants cannot scrape); else any API key."""
    token: str | None = request.app.state.settings.metrics_token
    keyring: Keyring | None = request.app.state.keyring
    if token is None and keyring is None:
        return
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer" and key:
        if token is not None:
            if hmac.compare_digest(key.encode(), token.encode()):
                return
        elif keyring is not None and keyring.owner_of(key) is not None:
            return
    raise Unauthorized()
