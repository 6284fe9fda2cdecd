"""Hosts for the cluster test (tests/test_cluster.py): Linux network namespaces as machines.

Each host is a network namespace of its own with one interface, `eth0`, on 10.231.0.0/24;
the other end of every host's cable is a port of a bridge in a namespace of its own (the
switch), so hosts reach each other only over TCP through it, and nothing inside reaches an
address outside (no namespace has a route beyond the subnet, and the root namespace has no
address on it). Cutting a host's cable is setting its switch port down: a silent partition
(packets vanish; nothing answers "unreachable"), healed by setting it up again.

What a namespace does not separate: the file system and the clock. The data directory is
one directory every host sees, as a network file system would be shared (unlike NFS, it
stays reachable during a partition: a cut host can still write files, which is the harder
case for fencing); all hosts share one clock, as NTP-synchronized machines do.

Every namespace of a run is named `tcl<pid>-<host>` (the pid of the test process), so a run
removes its own whatever happens and the next run removes those of a run that crashed
(`sweep_leftovers`: prefixes whose pid is gone). Only this module's functions run the `ip`
commands. Standard library only: the forwarder (`python tests/cluster_hosts.py forward`)
starts in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "tcl"
SUBNET = "10.231.0"
NETNS_DIR = Path("/run/netns")
RUN_DIRS = Path("/tmp")
RUN_DIR_PREFIX = "tuner-cluster-"
BRIDGE_HOST = "switch"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster test, in a plain sentence, or None."""
    if not sys.platform.startswith("linux"):
        return "the cluster test needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the cluster test needs root (its hosts are network namespaces: ip netns)"
    for tool in ("ip", "unshare", "runuser"):
        if shutil.which(tool) is None:
            return f"the cluster test needs `{tool}` (apt-get install iproute2 util-linux)"
    if postgres_bindir() is None:
        return "the cluster test needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)"
    try:
        pwd.getpwnam("postgres")  # initdb refuses to run as root
    except KeyError:
        return "the cluster test needs a `postgres` user to run PostgreSQL as"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def postgres_bindir() -> Path | None:
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    return max(found, key=lambda p: int(p.parent.name), default=None)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def namespace_pids(namespace: str) -> list[int]:
    done = _ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in done.stdout.split()]


def kill_namespace(namespace: str, sig: int = signal.SIGKILL, wait_s: float = 10.0) -> None:
    """Signal every process in the namespace; with SIGKILL, wait until none is left."""
    deadline = time.monotonic() + wait_s
    while pids := namespace_pids(namespace):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig != signal.SIGKILL or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers() -> list[str]:
    """Remove the namespaces (and everything running in them) and run directories of runs
    whose process is gone: a crashed or killed run leaves them behind. Returns their names."""
    swept = []
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.is_dir() else []
    for name in names:
        match = _OWNED.match(name)
        if match and not _pid_alive(int(match.group(1))):
            kill_namespace(name)
            _ip("netns", "del", name, check=False)
            swept.append(name)
    for path in RUN_DIRS.glob(f"{RUN_DIR_PREFIX}*"):
        pid = path.name[len(RUN_DIR_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(str(path))
    return swept


@dataclass
class Host:
    name: str
    namespace: str
    ip: str
    port: str  # its cable's end on the switch
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Cluster:
    """The switch and the hosts; `close()` removes every namespace and process it made."""

    def __init__(self, run_dir: Path, hosts: dict[str, int]) -> None:
        self.run_dir = run_dir
        self.prefix = f"{PREFIX}{os.getpid()}-"
        self.switch = self.prefix + BRIDGE_HOST
        self.hosts = {
            name: Host(name, self.prefix + name, f"{SUBNET}.{octet}", f"p-{name}")
            for name, octet in hosts.items()
        }
        self._made: list[str] = []
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    def up(self) -> None:
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts.values():
            self._add_namespace(host.namespace)
            # Made inside the two namespaces at once: no name in the root namespace.
            _ip("link", "add", "name", "eth0", "netns", host.namespace, "type", "veth",
                "peer", "name", host.port, "netns", self.switch)  # fmt: skip
            _ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def close(self) -> None:
        for name in reversed(self._made):
            kill_namespace(name)
        for host in self.hosts.values():
            for proc in host.processes:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        for name in reversed(self._made):
            _ip("netns", "del", name, check=False)
        self._made.clear()

    # Processes.

    def command(self, host: str, argv: Sequence[str | Path]) -> list[str]:
        """`argv` run on `host`: inside its namespace, under its own host name (a UTS
        namespace), as the service's worker ids and logs name hosts."""
        script = 'hostname "$0" && exec "$@"'
        return ["ip", "netns", "exec", self.hosts[host].namespace,
                "unshare", "--uts", "--", "sh", "-c", script, host, *map(str, argv)]  # fmt: skip

    def start(
        self, host: str, argv: Sequence[str | Path], env: dict[str, str], log: str
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process on `host` (its output in logs/<log>.log)."""
        with (self.run_dir / "logs" / f"{log}.log").open("ab") as out:
            # In the run directory: no `.env` of a checkout is read by the services.
            proc = subprocess.Popen(
                self.command(host, argv),
                env=env,
                cwd=self.run_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.hosts[host].processes.append(proc)
        return proc

    def run(
        self, host: str, argv: Sequence[str | Path], env: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(host, argv),
            env=env,
            cwd=self.run_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{host}: {' '.join(map(str, argv))}:\n{done.stdout}{done.stderr}")
        return done

    def pids(self, host: str) -> list[int]:
        return namespace_pids(self.hosts[host].namespace)

    # Faults.

    def cut(self, host: str) -> None:
        """Unplug the host's cable at the switch: a silent partition."""
        _ip("-n", self.switch, "link", "set", self.hosts[host].port, "down")

    def heal(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self.hosts[host].port, "up")

    def kill_all(self, host: str) -> None:
        """Every process on the host dies at once, as when the machine is lost."""
        kill_namespace(self.hosts[host].namespace)
        for proc in self.hosts[host].processes:
            proc.wait()
        self.hosts[host].processes.clear()

    def pause(self, host: str) -> None:
        """Freeze every process on the host (a VM paused by its hypervisor)."""
        kill_namespace(self.hosts[host].namespace, signal.SIGSTOP)

    def resume(self, host: str) -> None:
        kill_namespace(self.hosts[host].namespace, signal.SIGCONT)


# The service on those hosts, each part started with the project's own command and settings.

HOSTS = {"db": 2, "api": 3, "client": 4, "w1": 11, "w2": 12, "w3": 13}
WORKER_HOSTS = ("w1", "w2", "w3")
BIN = Path(sys.executable).parent
API_PORT = 8000
PG_PORT = 5432
PG_USER = "tuner"


class Service:
    """PostgreSQL on `db`, the API on `api`, a worker on each of `w1`-`w3`, and on `client`
    the forwarder the test reaches the API through (`api_socket`). `timings`: the TUNER_*
    settings every host shares (leases, heartbeats, database timeouts)."""

    def __init__(self, cluster: Cluster, timings: dict[str, str], api_key: str) -> None:
        self.cluster = cluster
        self.run_dir = cluster.run_dir
        self.data_dir = self.run_dir / "shared"  # the network file system every host mounts
        self.pg_dir = self.run_dir / "pg"
        self.api_socket = self.run_dir / "api.sock"
        self.api_key = api_key
        self.timings = timings
        self.bindir = postgres_bindir()
        db = cluster.hosts["db"].ip
        self.database_url = f"postgresql+psycopg://{PG_USER}@{db}:{PG_PORT}/postgres"
        # The test's own way in, from the root namespace: the server's Unix socket.
        self.local_database_url = (
            f"postgresql+psycopg://{PG_USER}@/postgres?host={self.pg_dir / 'socket'}"
        )
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_logs: dict[str, Path] = {}
        self._starts: dict[str, int] = {}

    def env(self, host: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUNER_")}
        ip = self.cluster.hosts[host].ip
        env.update(
            TF_CPP_MIN_LOG_LEVEL="2",
            TUNER_DATABASE_URL=self.database_url,
            TUNER_DATA_DIR=str(self.data_dir),
            # Every interface of the host, and the address the other hosts dial.
            TUNER_ORACLE_BIND="0.0.0.0",
            TUNER_ORACLE_ADVERTISE=ip,
            TUNER_CHILD_THREADS="1",
            **self.timings,
            **extra,
        )
        return env

    def _log(self, host: str) -> str:
        self._starts[host] = self._starts.get(host, 0) + 1
        return f"{host}-{self._starts[host]}"

    # PostgreSQL.

    def init_postgres(self) -> None:
        self.run_dir.chmod(0o755)  # the postgres user walks into it
        (self.pg_dir / "socket").mkdir(parents=True)
        shutil.chown(self.pg_dir, "postgres", "postgres")
        shutil.chown(self.pg_dir / "socket", "postgres", "postgres")
        self._as_postgres("initdb", "-D", self.pg_dir / "data", "-U", PG_USER, "-A", "trust",
                          "-E", "UTF8", "--no-locale", "--no-sync")  # fmt: skip
        subnet = f"{SUBNET}.0/24"
        (self.pg_dir / "data" / "pg_hba.conf").write_text(
            f"local all all trust\nhost all all {subnet} trust\n"
        )

    def start_postgres(self) -> None:
        db = self.cluster.hosts["db"].ip
        options = (
            f"-c listen_addresses={db} -c port={PG_PORT} "
            f"-c unix_socket_directories={self.pg_dir / 'socket'} "
            # fsync off: no machine crash is simulated. Commits stay synchronous: an
            # immediate stop must not lose what a client was told is committed.
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._as_postgres("pg_ctl", "-D", self.pg_dir / "data", "-l", self.pg_dir / "server.log",
                          "-w", "-t", "60", "-o", options, "start")  # fmt: skip

    def stop_postgres(self) -> None:
        """An immediate stop: every connection dropped at once, as a crash would."""
        self._as_postgres("pg_ctl", "-D", self.pg_dir / "data", "-m", "immediate", "-w", "stop")

    def _as_postgres(self, program: str, *args: str | Path) -> None:
        """A server program on the database host, as the postgres user (initdb refuses root)."""
        assert self.bindir is not None
        argv = ["runuser", "-u", "postgres", "--", self.bindir / program, *args]
        self.cluster.run("db", argv, env=dict(os.environ))

    # The project's processes.

    def migrate(self) -> None:
        self.cluster.run("api", [BIN / "tuner-service", "migrate"], env=self.env("api"))

    def start_api(self) -> subprocess.Popen[bytes]:
        ip = self.cluster.hosts["api"].ip
        # With keys set the API listens on TUNER_HOST (without, on 127.0.0.1 only).
        env = self.env("api", TUNER_HOST=ip, TUNER_PORT=str(API_PORT), TUNER_API_KEYS=self.api_key)
        return self.cluster.start("api", [BIN / "tuner-service", "api"], env, self._log("api"))

    def start_worker(self, host: str) -> subprocess.Popen[bytes]:
        log = self._log(host)
        proc = self.cluster.start(host, [BIN / "tuner-service", "worker"], self.env(host), log)
        self.workers[host] = proc
        self.worker_logs[host] = self.run_dir / "logs" / f"{log}.log"
        return proc

    def worker_started(self, host: str) -> bool:
        """Whether the host's latest worker has started its loop (it claims from now on)."""
        log = self.worker_logs[host]
        return log.exists() and "worker started" in log.read_text(errors="replace")

    def start_forwarder(self, name: str, host: str, port: int) -> Path:
        """A Unix socket at run_dir/<name>.sock relaying to host:port from the client host."""
        path = self.run_dir / f"{name}.sock"
        path.unlink(missing_ok=True)
        argv = [sys.executable, Path(__file__).resolve(), "forward", path, host, str(port)]
        self.cluster.start("client", argv, dict(os.environ), self._log(f"client-{name}"))
        deadline = time.monotonic() + 20
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the forwarder to {host}:{port} did not start")
            time.sleep(0.02)
        return path

    def log_text(self, host: str) -> str:
        """Everything the host's processes have written to their logs in this run."""
        logs = sorted((self.run_dir / "logs").glob(f"{host}-*.log"))
        return "".join(path.read_text(errors="replace") for path in logs)


# The client host's forwarder: the test process lives in the root namespace, which has no
# address on the cluster's subnet; it talks to a host through a Unix socket (a file, which
# every namespace sees) that this process, running on the client host, relays over TCP.


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _forward(listen: str, host: str, port: int) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=5
            )
        except (OSError, TimeoutError):
            writer.close()  # the test sees a closed connection: the host is unreachable
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = await asyncio.start_unix_server(relay, path=listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["forward"]:
        listen_path, target_host, target_port = sys.argv[2:5]
        asyncio.run(_forward(listen_path, target_host, int(target_port)))
