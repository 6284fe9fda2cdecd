"""`tuner` (and `python -m tuner_client`): the client commands without the server installed.

The same commands as `tuner-service submit`, `jobs`, ...; this entry point exists so that a
machine with only the client package (client/pyproject.toml) has them too.
"""

from __future__ import annotations

import argparse
import sys

from tuner_client.cli import add_client_commands, program_name


def build_parser() -> argparse.ArgumentParser:
    # Not argparse's default: under `python -m` it would call the program `__main__.py`.
    parser = argparse.ArgumentParser(
        prog=program_name("tuner"), description="Talk to a running tuner-service over HTTP."
    )
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
