"""Engines for reading and writing, scratch databases, and the upsert; what differs
between SQLite and PostgreSQL lives in app.store.backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.store.backend import SQLITE, Backend

SQLITE_BUSY_TIMEOUT_S = 30.0


def is_sqlite(url: str) -> bool:
    return Backend.for_url(url).name == SQLITE


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
    return Backend.for_url(url).make_engine(
        url, application_name=application_name, busy_timeout_s=busy_timeout_s, pool_size=pool_size
    )


def storable(text: str) -> bool:
    """Whether every backend can store, or even compare, `text`: PostgreSQL refuses a NUL
    character anywhere in what it is sent (a parameter, a JSON value) with a DataError."""
    return "\x00" not in text


def for_writing(engine: Engine) -> Engine:
    """The engine for write transactions (on SQLite they take the write lock at BEGIN;
    see app.store.backend). Open them with app.store.unit_of_work."""
    return Backend.of(engine).for_writing(engine)


def for_reading(engine: Engine) -> Engine:
    """The engine whose transactions read one snapshot, from their first query to their end
    (REPEATABLE READ on PostgreSQL; SQLite's read transactions are snapshots already)."""
    return Backend.of(engine).for_reading(engine)


@contextmanager
def scratch_database(admin_url: str, prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A fresh PostgreSQL database, created through `admin_url` (a role allowed to create
    databases) and dropped afterwards, whoever is still connected: its URL. For the
    test suite and the benchmarks. `template`: a database (nobody connected to it) it
    starts as a copy of."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy_of = "" if template is None else f' TEMPLATE "{template}"'
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
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
    stmt = Backend.of(session).insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=conflict, set_={name: stmt.excluded[name] for name in update}
    )
    if returning is not None:
        return session.execute(stmt.returning(returning)).scalar_one()
    session.execute(stmt)
    return None
