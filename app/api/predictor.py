"""Runs best models for the API in one long-lived spawned child (TensorFlow stays out of the API).

Requests are serialized over a pipe; the child caches loaded models. A child
that dies or hangs is replaced on the next request.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from app.errors import ProblemError

logger = logging.getLogger(__name__)

# The program the child runs, named rather than imported: importing it here would load the
# worker package into the API process, which must stay free of it (import-linter checks).
PREDICTION_PROGRAM = "tuner_jobs.search.predict_child"

PREDICT_TIMEOUT_S = 120.0


class Predictor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _ensure_child(self) -> Connection:
        if self._process is None or not self._process.is_alive() or self._conn is None:
            self.close()
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            self._process = context.Process(
                target=_run_program, args=(PREDICTION_PROGRAM, child), daemon=True, name="predictor"
            )
            self._process.start()
            child.close()
            self._conn = parent
        return self._conn

    def predict(
        self, model_path: Path, columns: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> list[list[float]]:
        request = {
            "model_path": str(model_path),
            "mtime": model_path.stat().st_mtime,
            "columns": columns,
            "rows": rows,
        }
        with self._lock:
            conn = self._ensure_child()
            try:
                conn.send(request)
                if not conn.poll(PREDICT_TIMEOUT_S):
                    raise TimeoutError
                reply = conn.recv()
            except (TimeoutError, EOFError, OSError) as exc:
                logger.warning(
                    "prediction process failed; restarting it", extra={"error": repr(exc)}
                )
                self.close()
                raise ProblemError(
                    503, "the prediction process failed; try again", title="Unavailable"
                ) from exc
        if "error" in reply:
            raise ProblemError(500, f"prediction failed: {reply['error']}")
        return reply["outputs"]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
            self._process = None


def _run_program(module: str, conn: Connection) -> None:
    """The spawned child's entry: import the prediction program there, and serve `conn`."""
    importlib.import_module(module).serve(conn)
