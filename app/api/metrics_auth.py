"""Who may scrape GET /metrics: open without keys; with TUNER_METRICS_TOKEN, that bearer token
only (scrapers need no tenant's key, tenants cannot scrape); else any API key."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.security.utils import get_authorization_scheme_param

from app.api.auth import Unauthorized
from app.keys import Keyring


async def require_metrics_access(request: Request) -> None:
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
