"""`tuner-service`: api, worker, migrate, serve; and client commands (tuner_client.cli)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from app.logs import configure_logging
from app.settings import Settings, get_settings, serve_layout
from app.worker_pool import WorkerPool, set_running
from tuner_client.cli import add_client_commands

logger = logging.getLogger("tuner_service")


def cmd_migrate(_args: argparse.Namespace) -> int:
    from app.store.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    logger.info("database is at the latest migration")
    return 0


def _api_host(settings: Settings) -> str | None:
    """Where the API listens (app.api.auth.bind_host); None, logged, when TUNER_API_KEYS is bad."""
    from app.keys import ApiKeyError, bind_host

    try:
        return bind_host(settings)
    except ApiKeyError as exc:
        logger.error("%s", exc)
        return None


def _run_api(settings: Settings, host: str) -> int:
    import uvicorn

    # What a newcomer opens first: the dashboard, then the API's own pages.
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{settings.port}"
    logger.info("dashboard at %s/ (Swagger UI at %s/docs, ReDoc at %s/redoc)", base, base, base)
    uvicorn.run("app.main:app", host=host, port=settings.port, log_config=None)
    return 0


# An upload still being written or profiled by another API on the same data dir is younger.
STALE_UPLOAD_S = 3600.0


def remove_partial_uploads(datasets_dir: Path, *, older_than_s: float) -> int:
    """Delete `.upload-*` files (uploads cut off by a crash or kill -9) not written to for
    `older_than_s`; returns how many."""
    removed, cutoff = 0, time.time() - older_than_s
    for path in datasets_dir.glob(".upload-*"):
        try:
            if path.stat().st_mtime <= cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # another process finished or removed it meanwhile
    if removed:
        logger.info("removed %d partial upload(s)", removed, extra={"dir": str(datasets_dir)})
    return removed


def cmd_api(_args: argparse.Namespace) -> int:
    settings = get_settings()
    host = _api_host(settings)
    if host is None:
        return 2
    # Other API replicas may share the data dir: only partials nobody has touched for long.
    remove_partial_uploads(settings.datasets_dir, older_than_s=STALE_UPLOAD_S)
    return _run_api(settings, host)


# The worker is a program of its own (tuner_jobs, where TensorFlow lives): started by name,
# so that app, the API's package, never imports it (import-linter checks).
WORKER_PROGRAM = [sys.executable, "-m", "tuner_jobs.worker"]


def cmd_worker(args: argparse.Namespace) -> int:
    extra = [] if args.max_jobs is None else ["--max-jobs", str(args.max_jobs)]
    # exec, not a child: the worker keeps this process's id, so signals reach it directly.
    os.execv(WORKER_PROGRAM[0], [*WORKER_PROGRAM, *extra])


def cmd_serve(args: argparse.Namespace) -> int:
    """Migrations, then N worker processes beside the API in the foreground."""
    settings = get_settings()
    host = _api_host(settings)  # a bad TUNER_API_KEYS stops us before anything starts
    if host is None:
        return 2
    cmd_migrate(args)
    # serve is its data dir's only API: any partial upload is one a previous run left behind.
    remove_partial_uploads(settings.datasets_dir, older_than_s=0)
    count, threads = serve_layout(settings)
    env = {**os.environ, "TUNER_CHILD_THREADS": str(threads)}
    # Each worker dies with us (even on kill -9), and is restarted if it dies alone.
    pool = WorkerPool(WORKER_PROGRAM, count, env)
    pool.start()
    set_running(pool)
    logger.info("started %d worker(s)", count, extra={"tensorflow_threads_per_search": threads})

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # uvicorn shuts down on SIGTERM, then raises the signal again under the handler
    # that was there before it: with the default one the process would die on the spot
    # and leave its workers running. This one unwinds through `finally`.
    signal.signal(signal.SIGTERM, _exit)
    try:
        return _run_api(settings, host)
    finally:
        pool.stop()
        set_running(None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuner-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="run the REST API (uvicorn)").set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="run a worker supervisor")
    worker.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser(
        "serve", help="migrate, then API + TUNER_WORKERS workers (default: one per core)"
    ).set_defaults(func=cmd_serve)
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
