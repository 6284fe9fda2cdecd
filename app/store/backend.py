"""What differs between SQLite and PostgreSQL, in one object: `Backend.for_url(url)`.

Everything else in app.store is written once for both. The queue's claim is the one place
where the two serialize differently, and both halves of it stay in app.store.queue's SQL:
on PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED` locks the row (SQLite's compiler drops
the clause); on SQLite the transaction itself holds the whole database, because a writing
transaction begins with BEGIN IMMEDIATE (`for_writing`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.settings import Settings, get_settings

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# JSONB on PostgreSQL (indexable, compared by value), plain JSON text on SQLite. A column
# type must be the same object for both, so this is a variant rather than a method.
JSON_TYPE = JSON().with_variant(postgresql.JSONB(), POSTGRESQL)


class Backend:
    """One database server kind. Instances are stateless singletons: `Backend.of(engine)`."""

    name: ClassVar[str]
    # An in-process library: a query is a function call, not a round trip to a server.
    # The API then runs short database work on the event loop (app.api.deps).
    in_process: ClassVar[bool]

    @staticmethod
    def for_url(url: str) -> Backend:
        name = make_url(url).get_backend_name()
        try:
            return _BACKENDS[name]
        except KeyError:
            raise ValueError(f"unsupported database {name!r}: use sqlite or postgresql") from None

    @staticmethod
    def of(bind: Engine | Connection | Session) -> Backend:
        if isinstance(bind, Session):
            bind = bind.get_bind()
        return _BACKENDS[bind.dialect.name]

    def make_engine(
        self, url: str, *, application_name: str, busy_timeout_s: float, pool_size: int
    ) -> Engine:
        raise NotImplementedError

    def for_reading(self, engine: Engine) -> Engine:
        """`engine` for transactions that read one snapshot from their first query to their
        end (a page of trials and its total, a job and its progress)."""
        return engine

    def for_writing(self, engine: Engine) -> Engine:
        """`engine` for write transactions (open them with app.store.unit_of_work)."""
        return engine

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held around a write transaction, for backends that take one writer at a time."""
        yield

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT, the one with `on_conflict_do_update` (an upsert)."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = SQLITE
    in_process = True

    # SQLite writes one transaction at a time. Threads that find the write lock taken wait
    # in SQLite's busy handler, which sleeps in growing steps of up to 100 ms and polls
    # again, so a burst of concurrent submissions waited long while the database sat idle
    # between the sleeps (docs/benchmarks.md). Threads of one process that queue
    # on a mutex instead take the database the moment it is free. Writers in other
    # processes (the workers, the API) still meet at SQLite's own lock.
    _writer = threading.Lock()

    def make_engine(
        self, url: str, *, application_name: str, busy_timeout_s: float, pool_size: int
    ) -> Engine:
        pool: dict[str, int] = {"pool_size": pool_size, "max_overflow": 10}
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # one connection per thread (SingletonThreadPool): nothing to size
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s}, **pool)
        _configure_sqlite(engine, busy_timeout_s)
        return engine

    def for_writing(self, engine: Engine) -> Engine:
        # In WAL mode a deferred transaction that reads and then writes fails at once with
        # "database is locked" (SQLITE_BUSY_SNAPSHOT, no busy wait) when another connection
        # committed in between. Taking the lock at BEGIN makes writers queue on the busy
        # timeout instead; the queue's claim relies on it to serialize claims outright.
        return engine.execution_options(sqlite_begin="IMMEDIATE")

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        with self._writer:
            yield

    def insert(self, table: Any) -> Any:
        return sqlite.insert(table)


class PostgreSQLBackend(Backend):
    name = POSTGRESQL
    in_process = False

    def make_engine(
        self, url: str, *, application_name: str, busy_timeout_s: float, pool_size: int
    ) -> Engine:
        # Options the URL names itself win over the settings' (`?connect_timeout=30`).
        network = {k: str(v) for k, v in network_options(get_settings()).items()}
        with_network = make_url(url).update_query_dict({**network, **make_url(url).query})
        return create_engine(
            with_network,
            pool_pre_ping=True,
            connect_args={"application_name": application_name},
            pool_size=pool_size,
            max_overflow=10,
        )

    def for_reading(self, engine: Engine) -> Engine:
        # READ COMMITTED gives each query its own snapshot, so a trial a worker inserts in
        # between made a page's total disagree with its rows. A read-only transaction
        # under REPEATABLE READ never fails to serialize. (SQLite's reads are snapshots.)
        return engine.execution_options(isolation_level="REPEATABLE READ")

    def insert(self, table: Any) -> Any:
        return postgresql.insert(table)


def network_options(settings: Settings) -> dict[str, int | str]:
    """libpq's connection options that bound a database call on a dead network: without
    them a connection attempt to a host that drops packets waits for the kernel's SYN
    retries, and a query sent into a silent partition waits on TCP retransmission
    (tcp_retries2: many minutes) while the job's lease runs out.

    The same bounds go to the server's end of the connection (`options`), which a client
    cannot otherwise reach: a host that vanishes between two statements of a transaction
    (power lost, cable cut) leaves its backend idle in that transaction, holding its row
    locks, for the server's TCP keepalive (two hours by default). A slot heartbeat caught
    there would keep the slot's row locked and no worker could take the slot over."""
    options: dict[str, int | str] = {
        "connect_timeout": settings.db_connect_timeout_s,
        "keepalives": 1,
        "keepalives_idle": settings.db_keepalives_idle_s,
        "keepalives_interval": settings.db_keepalives_interval_s,
        "keepalives_count": settings.db_keepalives_count,
    }
    server = {
        # No transaction of ours waits between statements: half a lease (5 s at least) is
        # far past any, and frees the rows well before the lease lets another take over.
        "idle_in_transaction_session_timeout": int(max(5.0, settings.lease_s / 2) * 1000),
        "tcp_keepalives_idle": settings.db_keepalives_idle_s,
        "tcp_keepalives_interval": settings.db_keepalives_interval_s,
        "tcp_keepalives_count": settings.db_keepalives_count,
    }
    if settings.db_tcp_user_timeout_s:
        # Bounds data sent but never acknowledged, which keepalives do not cover.
        options["tcp_user_timeout"] = settings.db_tcp_user_timeout_s * 1000
        server["tcp_user_timeout"] = settings.db_tcp_user_timeout_s * 1000
    options["options"] = " ".join(f"-c {name}={value}" for name, value in server.items())
    return options


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    # pysqlite's own transaction handling issues BEGIN lazily (only before DML),
    # which makes `BEGIN IMMEDIATE` impossible; take control of BEGIN ourselves.
    # See the SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional DDL".
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # A writing transaction asks for the write lock up front (for_writing).
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


_BACKENDS: dict[str, Backend] = {SQLITE: SQLiteBackend(), POSTGRESQL: PostgreSQLBackend()}
