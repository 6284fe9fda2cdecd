"""`tuner-service`: api, worker, migrate, serve; and client commands (app.client_cli)."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys

from app.client_cli import add_client_commands
from app.logs import configure_logging
from app.settings import Settings, get_settings

logger = logging.getLogger("tuner_service")


def cmd_migrate(_args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    logger.info("database is at the latest migration")
    return 0


def _api_host(settings: Settings) -> str | None:
    """Where the API listens (see app.auth.bind_host); None, logged, when TUNER_API_KEYS is bad."""
    from app.auth import ApiKeyError, bind_host

    try:
        return bind_host(settings)
    except ApiKeyError as exc:
        logger.error("%s", exc)
        return None


def _run_api(settings: Settings, host: str) -> int:
    import uvicorn

    logger.info("API listening", extra={"url": f"http://{host}:{settings.port}/docs"})
    uvicorn.run("app.main:app", host=host, port=settings.port, log_config=None)
    return 0


def cmd_api(_args: argparse.Namespace) -> int:
    settings = get_settings()
    host = _api_host(settings)
    return 2 if host is None else _run_api(settings, host)


def cmd_worker(args: argparse.Namespace) -> int:
    from tuner_jobs.worker import Worker

    worker = Worker(get_settings())
    worker.install_signal_handlers()
    worker.run(max_jobs=args.max_jobs)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Migrations, then N worker processes beside the API in the foreground."""
    settings = get_settings()
    host = _api_host(settings)  # a bad TUNER_API_KEYS stops us before anything starts
    if host is None:
        return 2
    cmd_migrate(args)
    workers = [
        subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
        for _ in range(settings.workers)
    ]
    logger.info("started %d worker(s)", len(workers))

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # uvicorn shuts down on SIGTERM, then raises the signal again under the handler
    # that was there before it: with the default one the process would die on the spot
    # and leave its workers running. This one unwinds through `finally`.
    signal.signal(signal.SIGTERM, _exit)
    try:
        return _run_api(settings, host)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuner-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="run the REST API (uvicorn)").set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="run a worker supervisor")
    worker.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("serve", help="migrate, then API + TUNER_WORKERS workers").set_defaults(
        func=cmd_serve
    )
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
