"""`make bench` (python -m benchmarks [--only 1,4]): run the items, print one table.

Each item measures its own comparison side by side in this run. Items run one after
another (never two at once: they would share the CPU) and a failing item becomes a
row saying so; the table always prints. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

from benchmarks import latency, memory, parallel, results_scale, service_vs_script, submissions
from benchmarks.report import Row, table

ITEMS: dict[str, Callable[[], list[Row]]] = {
    "1": service_vs_script.measure,
    "2": parallel.measure,
    "3": latency.measure,
    "4": results_scale.measure,
    "5": submissions.measure,
    "6": memory.measure,
}
# Quick, deterministic items first: a broken setup shows in seconds, not minutes.
ORDER = ["5", "4", "1", "2", "3", "6"]


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    import sqlalchemy

    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    )


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def print_report(rows: list[Row], *, started: float, load_before: str, detail: str = "") -> None:
    """A benchmark's ending: the machine, the date and the load it ran under, its table."""
    print(f"Machine: {machine()}")
    print(
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {detail}load average (1/5/15 min) "
        f"before: {load_before}, after: {load()}; total {time.monotonic() - started:.0f} s"
    )
    print()
    print(table(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", default=",".join(ORDER), help="items to run, e.g. 1,4")
    args = parser.parse_args(argv)
    chosen = [item for item in ORDER if item in args.only.split(",")]
    started = time.monotonic()
    load_before = load()
    rows: list[Row] = []
    for item in chosen:
        t0 = time.monotonic()
        print(f"[bench] item {item} ...", file=sys.stderr, flush=True)
        try:
            got = ITEMS[item]()
        except Exception as exc:  # one broken item must not hide the others' figures
            traceback.print_exc()
            got = [Row(f"{item}. (failed)", "-", f"{type(exc).__name__}: {exc}", met=False)]
        rows += got
        print(f"[bench] item {item}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        for row in got:
            print(f"[bench]   {row.measure}: {row.value} {row.verdict}", file=sys.stderr)
    print_report(rows, started=started, load_before=load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
