"""API keys (TUNER_API_KEYS): who is calling, and which datasets and jobs they may see.

`TUNER_API_KEYS` is either a comma-separated list of keys, or `@` and the path of a file
with one hashed key per line (`sha256:<hex digest of the key>`; blank lines and `#`
comments are skipped). Unset, the API has no authentication, every row is visible, and
the CLI listens on 127.0.0.1 only.

A caller's identity is its owner id: the first 16 hex digits of sha256(key). It is
stored on each dataset and job the caller creates, and is not a secret.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import Select
from sqlalchemy.orm import Session
from starlette.datastructures import Headers

from app.db import get_by_id
from app.errors import ProblemError, problem_response
from app.models import Owned
from app.settings import Settings

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
LOOPBACK = "127.0.0.1"
HASH_PREFIX = "sha256:"
OWNER_ID_LENGTH = 16
_HASHED_KEY = re.compile(r"sha256:([0-9a-fA-F]{64})")

# One answer for a missing, malformed or unknown key: the client learns nothing about why.
UNAUTHORIZED_TITLE = "Unauthorized"
UNAUTHORIZED_DETAIL = "a valid API key is required: Authorization: Bearer <key>"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}

OwnedT = TypeVar("OwnedT", bound=Owned)
SelectT = TypeVar("SelectT", bound=Select[Any])


class ApiKeyError(ValueError):
    """TUNER_API_KEYS cannot be used as it stands (the service refuses to start)."""


def key_digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


@dataclass(frozen=True)
class Keyring:
    """The sha256 hex digests of the accepted keys."""

    digests: tuple[str, ...]

    @classmethod
    def parse(cls, value: str | None) -> Keyring | None:
        """The keys TUNER_API_KEYS names; None when it is unset or blank (no authentication)."""
        value = (value or "").strip()
        if not value:
            return None
        if value.startswith("@"):
            digests = _read_hashed_keys(Path(value[1:]))
        else:
            keys = [key.strip() for key in value.split(",") if key.strip()]
            if any(key.startswith(HASH_PREFIX) for key in keys):
                raise ApiKeyError(
                    "TUNER_API_KEYS: hashed keys (sha256:...) go in a file, one per line: "
                    "TUNER_API_KEYS=@/path/to/file"
                )
            digests = [key_digest(key.encode()) for key in keys]
        if not digests:
            raise ApiKeyError("TUNER_API_KEYS is set but holds no key")
        return cls(tuple(digests))

    def owner_of(self, key: str | None) -> str | None:
        """The owner id of a presented key, or None when it is not one of ours."""
        if not key:
            return None
        try:
            # Starlette decodes header bytes as latin-1; this gives back the bytes sent,
            # which are the UTF-8 of the key as configured.
            digest = key_digest(key.encode("latin-1"))
        except UnicodeEncodeError:
            return None
        # Compare against every digest, never stopping at a match, so that the time
        # taken says nothing about which key, or how much of one, matched.
        matched = False
        for known in self.digests:
            matched |= secrets.compare_digest(digest, known)
        return digest[:OWNER_ID_LENGTH] if matched else None


def _read_hashed_keys(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ApiKeyError(f"TUNER_API_KEYS: cannot read {path}: {exc.strerror}") from exc
    digests = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _HASHED_KEY.fullmatch(line)
        if match is None:
            # The line itself stays out of the message: it might be a key in the clear.
            raise ApiKeyError(f"{path}:{number}: expected sha256:<64 hex digits>")
        digests.append(match.group(1).lower())
    return digests


def bind_host(settings: Settings) -> str:
    """Where the API may listen: TUNER_HOST when API keys are set; otherwise loopback only,
    since anyone who could reach an unauthenticated API could read and delete everything."""
    keyring = Keyring.parse(settings.api_keys)
    if keyring is not None:
        logger.info("API keys required", extra={"keys": len(keyring.digests)})
        return settings.host
    logger.warning(
        "TUNER_API_KEYS is unset: the API has no authentication, so it listens on %s only%s; "
        "set TUNER_API_KEYS to serve other hosts",
        LOOPBACK,
        f" (TUNER_HOST={settings.host} is ignored)" if settings.host != LOOPBACK else "",
        extra={"host": LOOPBACK},
    )
    return LOOPBACK


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


def owned(stmt: SelectT, model: type[Owned], owner: str | None) -> SelectT:
    """`stmt` limited to the caller's rows of `model`; without keys (owner None), all rows."""
    return stmt if owner is None else stmt.where(model.owner == owner)


def get_owned(
    session: Session, model: type[OwnedT], ident: str, owner: str | None
) -> OwnedT | None:
    """The row with this id if the caller may see it; another key's row is as good as absent."""
    row = get_by_id(session, model, ident)
    if row is None or (owner is not None and row.owner != owner):
        return None
    return row
