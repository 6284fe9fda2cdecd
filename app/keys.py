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

from app.settings import Settings

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
HASH_PREFIX = "sha256:"
OWNER_ID_LENGTH = 16
_HASHED_KEY = re.compile(r"sha256:([0-9a-fA-F]{64})")


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
