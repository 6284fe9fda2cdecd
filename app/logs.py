"""Logging: one line per record, with the record's structured `extra=` fields appended."""

from __future__ import annotations

import logging
import os

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure_logging(level: str | None = None) -> None:
    """One handler on the root logger, at `level` (else TUNER_LOG_LEVEL, else INFO).

    Also quiets what would bury the service's own lines at the default level: uvicorn's
    access line per request (the dashboard polls every two seconds; TUNER_LOG_LEVEL=DEBUG
    shows them again), and TensorFlow's C++ notices (CUDA drivers missing on a CPU
    machine, oneDNN). The latter through TF_CPP_MIN_LOG_LEVEL in this process's
    environment, which every process it starts inherits: every entry point calls this
    before starting a search process, and TensorFlow reads the variable only at import.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(
        KeyValueFormatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("TUNER_LOG_LEVEL", "INFO"))
    # Alembic announces each plugin it loads at INFO; that is noise to an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    verbose = root.getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("uvicorn.access").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # An operator's own setting wins; at DEBUG, TensorFlow's warnings show too.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "2")
