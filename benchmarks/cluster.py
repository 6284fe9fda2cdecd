"""`make bench-cluster`: how far one parallel search scales (issue 28).

One chief (the service's own OracleServer: KerasTuner's servicer over gRPC, around a
RandomSearch oracle whose project directory is on disk, as a job's is) hands trials to N
tuner clients, each a process of its own, each on a slot of a real running job claimed
through app.store.slot_queue, heartbeating it every TUNER_HEARTBEAT_S as a worker does.
A client's trial is trivial, one epoch, and costs what a real trial's bookkeeping does:
the tuner's gRPC calls (CreateTrial, UpdateTrial after the epoch, EndTrial) and the real
TrialRecorder's fenced writes (trial started, epoch ended, trial ended) on PostgreSQL.
Clients load the recorder and KerasTuner's generated gRPC messages without importing
TensorFlow (a stub `keras_tuner` package): a real tuner imports it only to train.

Each row runs a fresh job and oracle to a fixed number of trials. "oracle only" skips the
database writes, so the two rows for one N tell which side limits. The chief's oracle lock
(KerasTuner serializes every oracle call on it) is timed: its share of the wall clock is
how busy the chief is. The profile of the chief's oracle calls, at the largest N, says
where that time goes.

    python -m benchmarks.cluster [--clients 4 8 16 32] [--trials 400]

PostgreSQL: TUNER_TEST_POSTGRES_URL (an admin URL; a scratch database is made) or, unset,
a throwaway server from /usr/lib/postgresql/*/bin with its default durability (fsync and
synchronous commits on, as in production), removed at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import multiprocessing
import os
import pstats
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import cpu_seconds, scratch_postgres

HEARTBEAT_S = 2.0  # TUNER_HEARTBEAT_S's default: each client's worker renews its slot
LEASE_S = 30.0
PROFILE_LINES = 18


# PostgreSQL.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _postgres() -> Iterator[tuple[str, int | None]]:
    """(database URL, postmaster pid or None when the server is not ours)."""
    with scratch_postgres() as url:
        if url is not None:
            yield url, None
            return
    bindir = max(Path("/usr/lib/postgresql").glob("*/bin"), default=None)
    if bindir is None:
        raise SystemExit("bench-cluster needs TUNER_TEST_POSTGRES_URL or PostgreSQL's binaries")
    tmp = Path(tempfile.mkdtemp(prefix="tuner-bench-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        owner = pwd.getpwnam("postgres")
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]

    def pg(*args: str | Path) -> None:
        subprocess.run([*as_owner, *map(str, args)], cwd=tmp, check=True, capture_output=True)

    port = _free_port()
    try:
        pg(bindir / "initdb", "-D", tmp / "data", "-U", "tuner", "-A", "trust", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c max_connections=200"
        pg(bindir / "pg_ctl", "-D", tmp / "data", "-l", tmp / "log", "-w", "-o", options, "start")
        pid = int((tmp / "data" / "postmaster.pid").read_text().split()[0])
        yield f"postgresql+psycopg://tuner@127.0.0.1:{port}/postgres", pid
    finally:
        if (tmp / "data" / "postmaster.pid").exists():
            pg(bindir / "pg_ctl", "-D", tmp / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


def _tree_cpu_seconds(pid: int | None) -> float | None:
    """A process's CPU and its reaped children's, plus its live children's (PostgreSQL's
    backends are the postmaster's children)."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += cpu_seconds(int(child))
            except ProcessLookupError:
                pass
    return total


# The job the clients work for, in the real tables, through the real queue functions.


def _job_with_slots(url: str, clients: int) -> tuple[Any, list[Any]]:
    from app.store.db import make_engine
    from app.store.models import Dataset, Job
    from app.store.queue import claim_job
    from app.store.slot_queue import claim_slot, open_slots
    from app.store.unit_of_work import write_session

    engine = make_engine(url, application_name="bench")
    with write_session(engine) as session:
        dataset = Dataset(name="bench", format="csv", sha256="0" * 64, size_bytes=1, rows=1,
                          target="y", task="regression", columns=[], features=1)  # fmt: skip
        session.add(dataset)
        session.flush()
        session.add(Job(dataset_id=dataset.id, spec={"parallel_trials": clients + 1},
                        search_space={}, trials_planned=1))  # fmt: skip
    with write_session(engine) as session:
        claim = claim_job(session=session, worker_id="chief", lease_s=LEASE_S)
        assert claim is not None
        open_slots(session=session, claim=claim, tuners=clients + 1, address="127.0.0.1:0")
    slots = []
    for index in range(clients):
        with write_session(engine) as session:
            slot = claim_slot(session=session, worker_id=f"client{index}", lease_s=LEASE_S)
            assert slot is not None
            slots.append(slot)
    engine.dispose()
    return claim, slots


# A tuner client: KerasTuner's protocol, the service's recorder, no TensorFlow.


def _light_keras_tuner() -> None:
    """Make `import keras_tuner` give a stub with only what the recorder needs, and the
    real generated gRPC messages importable, without keras_tuner/__init__ (TensorFlow)."""
    spec = importlib.util.find_spec("keras_tuner")
    assert spec is not None
    assert spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    errors = types.ModuleType("keras_tuner.errors")
    errors.FatalError = type("FatalError", (Exception,), {})  # type: ignore[attr-defined]
    for name, path in [("keras_tuner", root), ("keras_tuner.src", root / "src"),
                       ("keras_tuner.src.protos", root / "src" / "protos")]:  # fmt: skip
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    sys.modules["keras_tuner"].errors = errors  # type: ignore[attr-defined]
    sys.modules["keras_tuner.errors"] = errors


@dataclass
class ClientResult:
    trials: int
    rpc_s: float
    db_s: float
    cpu_s: float


def _client(slot: Any, address: str, url: str, record: bool, ready: Any, go: Any, out: Any) -> None:
    _light_keras_tuner()
    import grpc
    from keras_tuner.src.protos.v4 import keras_tuner_pb2 as kt_pb2
    from keras_tuner.src.protos.v4 import service_pb2 as pb2

    from app.store.db import make_engine
    from app.store.slot_queue import heartbeat_slot
    from app.store.unit_of_work import write_session
    from tuner_jobs.search.recorder import TrialRecorder

    engine = make_engine(url, application_name="worker")
    recorder = TrialRecorder(engine, slot)
    channel = grpc.insecure_channel(address)

    def method(name: str, request: Any, response: Any) -> Any:
        return channel.unary_unary(f"/keras_tuner.Oracle/{name}",
                                   request_serializer=request.SerializeToString,
                                   response_deserializer=response.FromString)  # fmt: skip

    create = method("CreateTrial", pb2.CreateTrialRequest, pb2.CreateTrialResponse)
    update = method("UpdateTrial", pb2.UpdateTrialRequest, pb2.UpdateTrialResponse)
    end = method("EndTrial", pb2.EndTrialRequest, pb2.EndTrialResponse)
    stop = threading.Event()

    def heartbeats() -> None:  # what the client's worker does meanwhile
        while not stop.wait(HEARTBEAT_S):
            with write_session(engine) as session:
                heartbeat_slot(session=session, claim=slot, lease_s=LEASE_S)

    beat = threading.Thread(target=heartbeats, daemon=True)
    ready.release()
    go.wait()
    beat.start()
    trials, rpc_s, db_s, cpu0 = 0, 0.0, 0.0, time.process_time()
    rng = __import__("random").Random(slot.slot)
    while True:
        t0 = time.perf_counter()
        trial = create(pb2.CreateTrialRequest(tuner_id=slot.tuner_id), timeout=120).trial
        rpc_s += time.perf_counter() - t0
        if trial.status == kt_pb2.TrialStatus.STOPPED:
            break
        if trial.status == kt_pb2.TrialStatus.IDLE:
            time.sleep(0.05)
            continue
        values = dict(_values(trial.hyperparameters.values))
        loss = rng.random()
        t0 = time.perf_counter()
        if record:
            recorder.trial_started(trial.trial_id, values)
        t1 = time.perf_counter()
        metrics = {"loss": loss, "val_loss": loss}
        update(pb2.UpdateTrialRequest(trial_id=trial.trial_id, metrics=metrics), timeout=120)
        t2 = time.perf_counter()
        if record:
            recorder.epoch_ended(trial.trial_id, 0, {"loss": loss, "val_loss": loss}, 1e-3)
        t3 = time.perf_counter()
        trial.status = kt_pb2.TrialStatus.COMPLETED
        end(pb2.EndTrialRequest(trial=trial), timeout=120)
        t4 = time.perf_counter()
        if record:
            recorder.trial_ended(trial.trial_id, status="COMPLETED", score=loss, best_epoch=0,
                                 stopped_early=False, message=None, duration_s=t4 - t0)  # fmt: skip
        t5 = time.perf_counter()
        rpc_s += (t2 - t1) + (t4 - t3)
        db_s += (t1 - t0) + (t3 - t2) + (t5 - t4)
        trials += 1
    stop.set()
    out.put(ClientResult(trials, rpc_s, db_s, time.process_time() - cpu0))
    engine.dispose()


def _values(proto: Any) -> Iterator[tuple[str, Any]]:
    for name, value in proto.values.items():
        yield name, getattr(value, value.WhichOneof("kind"))


# The chief.


class TimedLock:
    """KerasTuner's per-oracle lock, timed: how long it was held, and waited for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held_s = 0.0
        self.waited_s = 0.0
        self._since = 0.0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        t0 = time.perf_counter()
        got = self._lock.acquire(blocking, timeout)
        self._since = time.perf_counter()
        self.waited_s += self._since - t0
        return got

    def release(self) -> None:
        self.held_s += time.perf_counter() - self._since
        self._lock.release()


class Profiled:
    """Each oracle call profiled on its own thread's profiler (cProfile's are per thread)."""

    def __init__(self, oracle: Any, names: tuple[str, ...]) -> None:
        self.profiles: dict[int, cProfile.Profile] = {}
        for name in names:
            setattr(oracle, name, self._wrap(getattr(oracle, name)))

    def _wrap(self, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            profile = self.profiles.setdefault(threading.get_ident(), cProfile.Profile())
            return profile.runcall(method, *args, **kwargs)

        return call

    def report(self) -> str:
        profiles = list(self.profiles.values())
        if not profiles:
            return "(no calls)"
        out = io.StringIO()
        stats = pstats.Stats(profiles[0], stream=out)
        for profile in profiles[1:]:
            stats.add(profile)
        stats.sort_stats("tottime").print_stats(PROFILE_LINES)
        return out.getvalue()


def _chief(directory: Path, trials: int) -> Any:
    import keras_tuner as kt

    hp = kt.HyperParameters()  # about the size of the service's default space
    hp.Int("num_layers", 1, 3)
    hp.Int("units", 8, 256, step=2, sampling="log")
    hp.Choice("activation", ["relu", "tanh"])
    hp.Float("dropout", 0.0, 0.5)
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    hp.Choice("batch_size", [32, 64, 128])
    tuner = kt.RandomSearch(
        hypermodel=lambda _hp: None,  # never built: the clients' trials train nothing
        objective=kt.Objective("val_loss", "min"),
        max_trials=trials,
        hyperparameters=hp,
        tune_new_entries=False,
        seed=1,
        directory=str(directory),
        project_name="search",
        overwrite=True,
    )
    tuner.oracle.verbose = 0  # as a job's search runs (verbose=0): no per-trial display
    return tuner.oracle


@dataclass
class Measured:
    clients: int
    mode: str
    trials: int
    wall_s: float
    lock_held_s: float
    lock_waited_s: float
    rpc_ms: float
    db_ms: float
    chief_cpu_s: float
    clients_cpu_s: float
    db_cpu_s: float | None
    profile: str


def measure(url: str, pg_pid: int | None, clients: int, trials: int, record: bool) -> Measured:
    from tuner_jobs.search.chief import OracleServer
    from tuner_jobs.search.keras_tuner_compat import LOCKS

    context = multiprocessing.get_context("spawn")
    claim, slots = _job_with_slots(url, clients)
    with tempfile.TemporaryDirectory(prefix="tuner-bench-oracle-") as tmp:
        oracle = _chief(Path(tmp), trials)
        lock = TimedLock()
        LOCKS[oracle] = lock
        profiled = Profiled(oracle, ("create_trial", "update_trial", "end_trial"))
        with OracleServer(oracle, "127.0.0.1") as server:
            ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
            address = f"127.0.0.1:{server.port}"
            procs = [
                context.Process(target=_client, args=(slot, address, url, record, ready, go, out))
                for slot in slots
            ]
            for proc in procs:
                proc.start()
            for _ in procs:
                if not ready.acquire(timeout=300):  # every client has imported: clock starts
                    raise RuntimeError("a tuner client did not start")
            db_cpu0 = _tree_cpu_seconds(pg_pid)
            cpu0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
            go.set()
            results = [_result(out, procs) for _ in procs]
            wall = time.perf_counter() - t0
            chief_cpu = cpu_seconds(os.getpid()) - cpu0
            db_cpu1 = _tree_cpu_seconds(pg_pid)
            for proc in procs:
                proc.join()
    done = sum(r.trials for r in results)
    if record:  # every trial handed out was recorded, with its epoch
        assert _recorded(url, claim.job_id) == (done, done)
    return Measured(
        clients=clients,
        mode="oracle + database" if record else "oracle only",
        trials=done,
        wall_s=wall,
        lock_held_s=lock.held_s,
        lock_waited_s=lock.waited_s,
        rpc_ms=1000 * sum(r.rpc_s for r in results) / max(done, 1),
        db_ms=1000 * sum(r.db_s for r in results) / max(done, 1),
        chief_cpu_s=chief_cpu,
        clients_cpu_s=sum(r.cpu_s for r in results),
        db_cpu_s=None if db_cpu0 is None or db_cpu1 is None else db_cpu1 - db_cpu0,
        profile=profiled.report(),
    )


def _recorded(url: str, job_id: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from app.store.db import make_engine
    from app.store.models import Trial, TrialEpoch, TrialStatus

    engine = make_engine(url, application_name="bench")
    with engine.connect() as conn:
        trials = conn.scalar(
            select(func.count()).where(
                Trial.job_id == job_id, Trial.status == TrialStatus.COMPLETED
            )
        )
        epochs = conn.scalar(
            select(func.count())
            .select_from(TrialEpoch)
            .join(Trial, Trial.id == TrialEpoch.trial_pk)
            .where(Trial.job_id == job_id)
        )
    engine.dispose()
    return int(trials or 0), int(epochs or 0)


def _result(out: Any, procs: list[Any]) -> ClientResult:
    while True:
        try:
            return out.get(timeout=5)
        except queue.Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                raise RuntimeError("a tuner client died (its traceback is above)") from None


def table(rows: list[Measured]) -> str:
    """One row per run. The chief's ceiling is one trial per lock-held time: every oracle
    call of every tuner takes that lock, one at a time."""
    lines = [
        "| tuner clients | writes | trials/s | chief lock held | lock held per trial (ms) "
        "| chief's ceiling (trials/s) | client ms per trial: gRPC / database "
        "| CPU s: chief / clients / PostgreSQL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        held_ms = 1000 * m.lock_held_s / m.trials
        db_cpu = "-" if m.db_cpu_s is None else f"{m.db_cpu_s:.1f}"
        lines.append(
            f"| {m.clients} | {m.mode} | {m.trials / m.wall_s:.0f}"
            f" | {100 * m.lock_held_s / m.wall_s:.0f}% | {held_ms:.1f} | {1000 / held_ms:.0f}"
            f" | {m.rpc_ms:.0f} / {m.db_ms:.0f}"
            f" | {m.chief_cpu_s:.1f} / {m.clients_cpu_s:.1f} / {db_cpu} |"
        )
    trials = {m.trials for m in rows}
    lines.append(f"\n{', '.join(map(str, sorted(trials)))} trials per row; wall clock from the "
                 "first call to the last client's end.")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--trials", type=int, default=400, help="trials per row")
    args = parser.parse_args(argv)
    # A plain kill still stops the throwaway server (its `finally`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows: list[Measured] = []
    with _postgres() as (url, pg_pid):
        from app.store.migrate import upgrade

        upgrade(url)
        for clients in args.clients:
            for record in (True, False):
                print(f"bench-cluster: {clients} clients, writes={record}", file=sys.stderr)
                rows.append(measure(url, pg_pid, clients, args.trials, record))
    print(table(rows))
    widest = max((m for m in rows if m.mode != "oracle only"), key=lambda m: m.clients)
    print(f"\nThe chief's oracle calls with {widest.clients} clients, by own time:\n")
    print(widest.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
