"""Runs best models for the API in one long-lived child process (TensorFlow stays out of the API).

The child caches loaded models and answers one request at a time, so the order in which
requests reach it is what is fair or not: each API key has a queue of its own, and a
thread hands the child the keys' requests in turn (round robin), so one key's burst of
large predictions delays another key's by at most the one already running. A request
waits as an asyncio future, holding no thread of the pool the other routes run in; how
many one key may have waiting is capped before its body is read (app.api.limits).

A child that dies or hangs is replaced on the next request.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.api.problems import PROBLEM_RESPONSES
from app.errors import ProblemError
from app.search.prediction import shape_predictions, unseen_categories, validate_rows
from app.search.profiler import forkserver_context

if TYPE_CHECKING:
    from app.store.models import Dataset

logger = logging.getLogger(__name__)

# The program the child runs, named rather than imported: importing it here would load the
# worker package into the API process, which must stay free of it (import-linter checks).
# import-linter cannot see a name in a string: tests/test_prediction_program.py checks that
# this module exists and serves a connection.
PREDICTION_PROGRAM = "tuner_jobs.search.predict_child"

PREDICT_TIMEOUT_S = 120.0

# The OpenAPI entry of the 429 app.api.limits.PerKeyConcurrency answers.
PREDICTIONS_BUSY = {
    **PROBLEM_RESPONSES[429],
    "description": "This API key already has TUNER_MAX_PREDICTIONS_PER_KEY predictions in "
    "flight; retry after Retry-After seconds",
    "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
}


@dataclass
class _Call:
    request: dict[str, Any]
    future: Future[list[list[float]]] = field(default_factory=Future)


class Predictor:
    def __init__(self, *, timeout_s: float = PREDICT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._waiting: dict[str | None, deque[_Call]] = {}
        # Keys with calls waiting, in the order they are served: one call of the key in
        # front, which then goes to the back if it has more.
        self._turns: deque[str | None] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    async def predict(
        self, owner: str | None, model_path: Path, columns: list[dict[str, Any]], rows: list[Any]
    ) -> list[list[float]]:
        """The model's outputs for `rows`, in `owner`'s turn."""
        request = {
            "model_path": str(model_path),
            "mtime": model_path.stat().st_mtime,
            "columns": columns,
            "rows": rows,
        }
        call = _Call(request)
        with self._cond:
            if self._closed:
                raise ProblemError(503, "the API is shutting down", title="Unavailable")
            if owner not in self._waiting:
                self._waiting[owner] = deque()
                self._turns.append(owner)
            self._waiting[owner].append(call)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="predictor", daemon=True)
                self._thread.start()
            self._cond.notify()
        # A client that goes away cancels the future: its call is skipped, not run.
        return await asyncio.wrap_future(call.future)

    def _next(self) -> _Call | None:
        with self._cond:
            while not self._turns and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            owner = self._turns.popleft()
            queue = self._waiting[owner]
            call = queue.popleft()
            if queue:
                self._turns.append(owner)
            else:
                del self._waiting[owner]
            return call

    def _serve(self) -> None:
        while (call := self._next()) is not None:
            if not call.future.set_running_or_notify_cancel():
                continue
            try:
                call.future.set_result(self._run(call.request))
            except Exception as exc:
                call.future.set_exception(exc)

    def _ensure_child(self) -> Connection:
        if self._process is None or not self._process.is_alive() or self._conn is None:
            self._stop_child()
            # Forked from the uploads' forkserver (pandas imported): no interpreter to start
            # and no pandas to import again, only TensorFlow, which the child imports.
            context = forkserver_context()
            parent, child = context.Pipe()
            self._process = context.Process(
                target=_run_program, args=(PREDICTION_PROGRAM, child), daemon=True, name="predictor"
            )
            self._process.start()
            child.close()
            self._conn = parent
        return self._conn

    def _run(self, request: dict[str, Any]) -> list[list[float]]:
        conn = self._ensure_child()
        try:
            conn.send(request)
            if not conn.poll(self.timeout_s):
                raise TimeoutError
            reply = conn.recv()
        except (TimeoutError, EOFError, OSError) as exc:
            logger.warning("prediction process failed; restarting it", extra={"error": repr(exc)})
            self._stop_child()
            raise ProblemError(
                503, "the prediction process failed; try again", title="Unavailable"
            ) from exc
        if "error" in reply:
            raise ProblemError(500, f"prediction failed: {reply['error']}")
        return reply["outputs"]

    def _stop_child(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
            self._process = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending = [call for queue in self._waiting.values() for call in queue]
            self._waiting.clear()
            self._turns.clear()
            self._cond.notify_all()
        for call in pending:
            call.future.cancel()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s)
        self._stop_child()


# What a predict route's database work hands over: the model's file and its dataset's row.
ModelAndDataset = tuple[Path, "Dataset"]


async def prediction_response(
    predictor: Predictor,
    owner: str | None,
    model_and_dataset: Callable[[], ModelAndDataset],
    rows: list[dict[str, Any]],
) -> Response:
    """A predict route's work: its database reads and checks (`model_and_dataset`), the
    rows' validation and the answer's JSON in the thread pool, the wait for the model's
    turn on the event loop, holding no thread."""

    def prepare() -> tuple[Path, Dataset, list[dict[str, Any]]]:
        path, dataset = model_and_dataset()
        return path, dataset, validate_rows(dataset, rows)

    path, dataset, clean = await run_in_threadpool(prepare)
    outputs = await predictor.predict(owner, path, dataset.columns, clean)

    def render() -> Response:
        warnings = unseen_categories(dataset, clean)
        answer = shape_predictions(dataset, outputs, warnings)
        return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")

    return await run_in_threadpool(render)


def _run_program(module: str, conn: Connection) -> None:
    """The spawned child's entry: import the prediction program there, and serve `conn`."""
    importlib.import_module(module).serve(conn)
