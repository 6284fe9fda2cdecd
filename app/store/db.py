"""Engine and session factory; SQLite is tuned for concurrent readers and writers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

SQLITE_BUSY_TIMEOUT_S = 30.0

M = TypeVar("M")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


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
        # A session may ask for a write lock up front (the queue's claim does)
        # by setting execution option sqlite_begin="IMMEDIATE".
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(
    url: str,
    *,
    application_name: str = "tuner-service",
    busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
    pool_size: int = 5,
) -> Engine:
    """An engine for `url`. On SQLite, `busy_timeout_s` is how long a writer waits for
    the write lock before the database counts as unavailable. `pool_size`: connections
    kept open for reuse; a request that finds none free opens (and afterwards closes)
    one more, which costs more than the query itself on either backend."""
    pool: dict[str, int] = {"pool_size": pool_size, "max_overflow": 10}
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # one connection per thread (SingletonThreadPool): nothing to size
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s}, **pool)
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"application_name": application_name},
        **pool,
    )


def storable(text: str) -> bool:
    """Whether every backend can store, or even compare, `text`: PostgreSQL refuses a NUL
    character anywhere in what it is sent (a parameter, a JSON value) with a DataError."""
    return "\x00" not in text


def get_by_id(session: Session, model: type[M], ident: str) -> M | None:
    """`session.get` for a client-supplied id; one no row can have (a NUL in it) finds nothing
    on every backend, where PostgreSQL would fail the query."""
    return session.get(model, ident) if storable(ident) else None


def for_writing(engine: Engine) -> Engine:
    """The engine whose transactions take SQLite's write lock at BEGIN (BEGIN IMMEDIATE).

    In WAL mode a deferred transaction that reads and then writes fails at once
    with "database is locked" (SQLITE_BUSY_SNAPSHOT, no busy wait) when another
    connection committed in between. Taking the lock up front makes writers queue
    on the busy timeout instead. PostgreSQL ignores the option.
    """
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def for_reading(engine: Engine) -> Engine:
    """The engine whose transactions read one snapshot, from their first query to their end.

    A request that reads a page of trials and their total, or a job and its progress,
    runs several queries. PostgreSQL's default (READ COMMITTED) gives each its own
    snapshot, so a trial a worker inserts in between made a page's total disagree with
    its rows; REPEATABLE READ gives the request one (a read-only transaction there
    never fails to serialize). SQLite's read transactions are snapshots already.
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database, created through `admin_url` (a role allowed to create
    databases) and dropped afterwards, whoever is still connected: its URL. For the
    test suite and the benchmarks."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin: Engine, name: str, *, patience_s: float = 30.0) -> None:
    """DROP DATABASE ... WITH (FORCE), retried: a role that is not a superuser may end
    only its own sessions, and an autovacuum worker busy in the database refuses it
    ("must be a member of the role whose process is being terminated") until it is done."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session in one write transaction that commits on success and rolls back on error."""
    with Session(for_writing(engine), expire_on_commit=False) as session, session.begin():
        yield session


def upsert(
    session: Session,
    table: Any,
    values: dict[str, Any],
    *,
    conflict: list[str],
    update: list[str],
    returning: Any = None,
) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE on SQLite and PostgreSQL alike."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=conflict, set_={name: stmt.excluded[name] for name in update}
    )
    if returning is not None:
        return session.execute(stmt.returning(returning)).scalar_one()
    session.execute(stmt)
    return None
