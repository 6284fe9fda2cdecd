"""The FastAPI application. Never imports TensorFlow (a test checks sys.modules)."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from app.api import openapi
from app.api.auth import API_PREFIX, RejectUnauthenticated, get_owner, require_metrics_access
from app.api.disk_health import degraded_reasons, install_disk_fault_handlers
from app.api.limits import JsonBodyLimit, PerKeyConcurrency, UploadLimit
from app.api.predictor import Predictor
from app.api.problems import install_error_handlers, problem_responses
from app.api.routes import (
    api_docs,
    artifacts,
    dashboard,
    datasets,
    exports,
    insights,
    jobs,
)
from app.errors import ProblemError
from app.keys import Keyring
from app.schemas import Health
from app.settings import Settings, get_settings
from app.store.backend import Backend
from app.store.db import for_reading, for_writing, make_engine
from app.store.metrics import metrics_registry
from app.store.worker_files import alive_workers
from app.worker_pool import running

logger = logging.getLogger(__name__)

# How many sync routes run at once: anyio's default thread pool, which FastAPI uses.
API_CONCURRENCY = 40
PREDICT_PATH = re.compile(re.escape(API_PREFIX) + r"/jobs/[^/]+/predict")


def _serve_restarts() -> int | None:
    """Workers `serve` restarted, when this API runs under it."""
    pool = running()
    return None if pool is None else pool.restarts


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Everything imported and built so far lives as long as the process. Frozen, out of
    # the collector's sight, a full collection no longer walks it: those pauses held up
    # every request waiting behind them (make bench, item 3: the p99 latency with and
    # without is on docs/benchmarks.md, "Figures that explain design choices").
    gc.freeze()
    yield
    app.state.predictor.close()
    app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        # Served from packaged assets by routes/api_docs.py (FastAPI's load them from a CDN).
        docs_url=None,
        generate_unique_id_function=openapi.operation_id,
        redoc_url=None,
        title="tuner-service",
        version="0.1.0",
        description="Hyperparameter search as a service, built on KerasTuner. Upload a dataset, "
        "submit a search, and watch every trial and epoch land in SQL.",
    )
    app.state.settings = settings
    app.state.keyring = keyring = Keyring.parse(settings.api_keys)
    app.state.engine = make_engine(
        settings.database_url,
        application_name="api",
        busy_timeout_s=settings.sqlite_busy_timeout_s,
        # As many as the routes that can run at once (anyio's thread pool: 40), so a
        # burst of polls never pays for opening connections.
        pool_size=API_CONCURRENCY,
    )
    # Built once: the options a request's session needs, for reading and for writing.
    app.state.read_engine = for_reading(app.state.engine)
    app.state.write_engine = for_writing(app.state.engine)
    app.state.predictor = Predictor()  # starts its process on the first prediction
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    install_error_handlers(app)
    install_disk_fault_handlers(app, settings)  # after them: ENOSPC is a 507, not a 503
    openapi.install(app)  # after the Problem schema: polishes the whole document
    app.add_middleware(
        UploadLimit, max_bytes=settings.max_upload_mb << 20, paths=(f"{API_PREFIX}/datasets",)
    )
    app.add_middleware(
        JsonBodyLimit, max_bytes=settings.max_json_kb << 10, exclude=(f"{API_PREFIX}/datasets",)
    )
    app.add_middleware(
        PerKeyConcurrency,
        limit=settings.max_predictions_per_key,
        pattern=PREDICT_PATH,
        keyring=keyring,
    )
    if keyring is not None:  # added last, so it runs first: strangers never reach the upload
        app.add_middleware(RejectUnauthenticated, keyring=keyring)

    # Every API route knows its caller (401 without a key when keys are set), validates its
    # input (422) and reads the database (503). /healthz and the docs stay open.
    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(get_owner)],
        responses=problem_responses(400, 401, 413, 422, 503, 507),
    )
    api.include_router(datasets.router)
    api.include_router(jobs.router)
    api.include_router(artifacts.router)
    api.include_router(exports.router, responses=problem_responses(404))  # all are per job
    api.include_router(insights.router)
    app.include_router(api)
    api_docs.install(app)
    dashboard.install(app)  # `/` and `/static`: open like /docs; the page asks for a key

    registry = metrics_registry(app.state.engine, settings, _serve_restarts)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["health"],
        dependencies=[Depends(require_metrics_access)],
        responses=problem_responses(401),
    )
    def metrics() -> PlainTextResponse:
        """Prometheus metrics: jobs by status, queue depth, trials, epochs, heartbeats."""
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health, tags=["health"], responses=problem_responses(503))
    async def healthz(request: Request) -> Health | JSONResponse:
        """Liveness, database reachability, and whether any worker is alive: `degraded`
        (200) when none is, 503 when the database is unreachable or writes would fail."""

        engine: Engine = request.app.state.read_engine

        def check() -> int:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return len(alive_workers(settings))

        # Not a read of the service's data but a probe, so not a sync route: async, and on
        # the event loop where the database is in-process, so that a burst of slow requests
        # filling the thread pool cannot make the health check wait behind it.
        try:
            if Backend.of(engine).in_process:
                workers = check()
            else:
                workers = await run_in_threadpool(check)
        except Exception as exc:
            logger.warning("database unreachable", extra={"error": str(exc)})
            raise ProblemError(503, "the database is unreachable", title="Unavailable") from exc
        reasons = degraded_reasons(settings, app.state.write_health)  # 503: writes would fail
        status = 503 if reasons else 200
        if not workers:
            reasons.append(
                "no worker is alive: none has shown itself within TUNER_LEASE_S "
                f"({settings.lease_s:g} s); submitted jobs wait until one starts"
            )
        if not reasons:
            return Health(status="ok", database="ok")
        body = {"status": "degraded", "database": "ok", "workers": workers, "reasons": reasons}
        return JSONResponse(body, status_code=status)

    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app on first access, so importing this
    # module (the import-boundary test does) needs no settings or database.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
