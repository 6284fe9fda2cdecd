"""`make test`: lint, import contracts, the docs build, then the suite with all the machine has.

A test skips only when a binary is absent, and the run ends by saying which and why:
- PostgreSQL: with TUNER_TEST_POSTGRES_URL unset and the server binaries installed
  (/usr/lib/postgresql/*/bin), a throwaway cluster of its own (temporary directory, a free
  loopback port, trust on 127.0.0.1 only), removed at the end, Ctrl-C and failures included.
- Chromium: /usr/bin/chromium present means the browser tests must run, not skip.
- The cluster test (tests/test_cluster.py): network namespaces as hosts, so root and
  `ip netns`; where they are missing, why is in the list of skips at the end. Its cases
  share one cluster: in a full run they run last, in one process of their own.

    python tests/run_suite.py [--lint-only] [pytest arguments...]
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")  # the browser the dashboard tests drive (tests/browser.py)
CLUSTER_TEST = "tests/test_cluster.py"
NO_TESTS_COLLECTED = 5  # pytest's exit code
POSTGRES_USER = "tuner"
LINT = [
    [BIN / "ruff", "check", "."],
    [BIN / "ruff", "format", "--check", "."],
    [BIN / "lint-imports"],
    # mkdocs.yml is strict: a broken link or a page missing from the nav fails the build.
    [BIN / "mkdocs", "build", "--quiet", "--site-dir", "build/site"],
]


def say(message: str) -> None:
    print(f"run_suite: {message}", flush=True)  # noqa: T201 - a command-line program


def lint() -> bool:
    """Every check runs, so that one report shows all that is wrong."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a banner about a release not used here
    failed = [cmd for cmd in LINT if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0]
    for cmd in failed:
        say(f"FAILED: {' '.join(str(part) for part in cmd)}")
    return not failed


def postgres_bindir() -> Path | None:
    """The newest installed server's bin directory (Debian's layout), if any."""
    found = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if os.access(path, os.X_OK) and os.access(path.parent / "pg_ctl", os.X_OK)
    ]
    return max(found, key=lambda p: int(p.parent.name), default=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_postgres(bindir: Path) -> Iterator[str]:
    """A cluster for this run only; yields its admin URL (the tests make databases in it)."""
    tmp = Path(tempfile.mkdtemp(prefix="tuner-test-pg-"))
    data = tmp / "data"
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise SystemExit("run_suite: running as root needs a `postgres` user") from None
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]

    def pg(*args: str | Path) -> subprocess.CompletedProcess[str]:
        # Its own session: the terminal's Ctrl-C goes to pytest, and this cluster is
        # stopped below, after the tests' teardown has dropped their databases.
        return subprocess.run(
            [*as_owner, *map(str, args)],
            cwd=tmp,
            capture_output=True,
            text=True,
            start_new_session=True,
        )

    try:
        init = pg(bindir / "initdb", "-D", data, "-U", POSTGRES_USER, "-A", "trust",
                  "-E", "UTF8", "--no-locale", "--no-sync")  # fmt: skip
        if init.returncode != 0:
            raise SystemExit(f"run_suite: initdb failed:\n{init.stdout}{init.stderr}")
        # Only TCP on loopback; initdb's default also trusts every local socket user.
        (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
                # Durability is worth nothing in a cluster that is deleted at the end.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                # Two test processes, each with pools, servers and worker processes.
                "-c max_connections=300"
            )
            start = pg(bindir / "pg_ctl", "-D", data, "-l", tmp / "server.log", "-w",
                       "-t", "60", "-o", options, "start")  # fmt: skip
            if start.returncode == 0:
                break
        else:
            log = (tmp / "server.log").read_text(errors="replace")
            raise SystemExit(f"run_suite: PostgreSQL did not start:\n{start.stdout}{log}")
        say(f"PostgreSQL {bindir.parent.name}: throwaway cluster on 127.0.0.1:{port} ({tmp})")
        yield f"postgresql+psycopg://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            pg(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def run_pytest(args: list[str], env: dict[str, str]) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    # SIGTERM (a cancelled CI job) becomes pytest's Ctrl-C: fixtures tear down, workers stop.
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGINT))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # The terminal sent it to pytest too: give its teardown time, then insist.
        try:
            proc.wait(timeout=60)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_skips(junits: list[Path], absent: list[str]) -> None:
    reasons: Counter[str] = Counter()
    for junit in junits:
        if not junit.exists():
            continue
        for case in ET.parse(junit).iter("testcase"):
            for skipped in case.iter("skipped"):
                reasons[skipped.get("message", "").strip() or "(no reason given)"] += 1
    print("\n" + "=" * 30 + " skipped, and why " + "=" * 30)  # noqa: T201
    for reason, count in reasons.most_common():
        print(f"{count:5d}  {reason}")  # noqa: T201
    if not reasons:
        print("    none")  # noqa: T201
    for what in absent:
        print(f"absent on this machine: {what}")  # noqa: T201


def main(argv: list[str]) -> int:
    if argv[:1] == ["--lint-only"]:
        return 0 if lint() else 1
    if not lint():
        return 1
    env = dict(os.environ)
    absent: list[str] = []
    cluster: AbstractContextManager[str | None] = nullcontext(env.get("TUNER_TEST_POSTGRES_URL"))
    if not env.get("TUNER_TEST_POSTGRES_URL"):
        bindir = postgres_bindir()
        if bindir is not None:
            cluster = throwaway_postgres(bindir)
        elif env.get("TUNER_TEST_REQUIRE_POSTGRES") == "1":
            say("TUNER_TEST_REQUIRE_POSTGRES=1 but no /usr/lib/postgresql/*/bin/initdb")
            return 1
        else:
            absent.append("PostgreSQL server (/usr/lib/postgresql/*/bin/initdb, pg_ctl)")
    if CHROMIUM.exists():
        env["TUNER_TEST_REQUIRE_CHROMIUM"] = "1"
    else:
        absent.append(f"{CHROMIUM} (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="tuner-test-") as scratch, cluster as url:
        if url:
            env["TUNER_TEST_POSTGRES_URL"] = url
            env["TUNER_TEST_REQUIRE_POSTGRES"] = "1"
        junit = Path(scratch) / "junit.xml"
        # The slowest tests listed at the end: where the suite's time goes. Each test
        # process is handed two tests at a time (xdist hands out a quarter of the suite at
        # first): with the searches collected first (conftest), the two then end together
        # on quick tests, where one was left with a queue of searches.
        pytest_args = ["-n", "2", "--maxschedchunk=2", "--durations=30"]
        if names_tests(argv):
            code = run_pytest([*pytest_args, f"--junitxml={junit}", *argv], env)
            report_skips([junit], absent)
            return code
        # The cluster test's cases share one cluster, which one process must hold (xdist
        # 3.8's --dist loadgroup no longer groups under pytest 9): they run after the rest,
        # in a process of their own, with the machine to themselves.
        code = run_pytest([*pytest_args, f"--ignore={CLUSTER_TEST}", f"--junitxml={junit}",
                           *argv], env)  # fmt: skip
        cluster_junit = Path(scratch) / "junit-cluster.xml"
        cluster_code = run_pytest([CLUSTER_TEST, f"--junitxml={cluster_junit}", *argv], env)
        if cluster_code not in (0, NO_TESTS_COLLECTED):  # none left after -m 'not slow'
            code = code or cluster_code
        report_skips([junit, cluster_junit], absent)
    return code


def names_tests(argv: list[str]) -> bool:
    """Whether the pytest arguments name tests to run (a path, or path::test)."""
    return any(not arg.startswith("-") and (ROOT / arg.split("::")[0]).exists() for arg in argv)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
