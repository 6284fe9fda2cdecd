"""SQLite writes one transaction at a time; this process's writers queue on a mutex.

A write transaction begins with BEGIN IMMEDIATE (app.store.db.for_writing). Threads that
find the write lock taken wait in SQLite's busy handler, which sleeps in growing steps
of up to 100 ms and polls again: under a burst of 16 concurrent submissions the slowest
waited over a second while the database sat idle between the sleeps. Threads of one
process that queue on a mutex instead take the database the moment it is free. Writers
in other processes (the workers) still meet at SQLite's lock, as before. PostgreSQL
has row locks and real concurrency: there this does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

_SQLITE_WRITER = threading.Lock()


@contextmanager
def one_sqlite_writer(session: Session) -> Iterator[None]:
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    with _SQLITE_WRITER:
        yield
