"""`python -m tuner_jobs.worker [--max-jobs N]`: one worker supervisor (`tuner-service worker`)."""

from __future__ import annotations

import argparse
import sys

from app.logs import configure_logging
from app.settings import get_settings
from tuner_jobs.worker.shutdown import die_with
from tuner_jobs.worker.supervisor import Worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tuner-service worker", description=__doc__)
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after N jobs")
    parser.add_argument(
        "--die-with", type=int, default=None, metavar="PID", help="shut down when PID exits"
    )
    args = parser.parse_args(argv)
    configure_logging()
    worker = Worker(get_settings())
    worker.install_signal_handlers()
    if args.die_with is not None:
        die_with(args.die_with)  # after the handlers: its SIGTERM is a graceful shutdown
    worker.run(max_jobs=args.max_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
