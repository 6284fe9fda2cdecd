"""FastAPI dependencies: settings, a reading session, and a writing route's unit of work.

They are `async def` on purpose. FastAPI runs a plain `def` dependency in its thread
pool, and each hop there costs about as much CPU as a small route's own work (the
POST /jobs and GET /jobs/{id} benchmarks, items 3 and 5). None of these wait on
anything when they start: a Session opens its connection at its first query, which
runs in the route's own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.settings import Settings
from app.store.backend import Backend
from app.store.unit_of_work import UnitOfWork

T = TypeVar("T")


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def _session(engine: Engine) -> AsyncIterator[Session]:
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if Backend.of(engine).in_process:
            # Handing the connection back rolls it back: an in-process call that
            # takes microseconds, cheaper than the hop to a thread.
            session.close()
        else:
            # A round trip to the server: not on the event loop.
            await run_in_threadpool(session.close)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for reading: one snapshot for the whole request (app.store.db.for_reading)."""
    async for session in _session(request.app.state.read_engine):
        yield session


async def get_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """The unit of work of a route that writes (app.store.unit_of_work): every writing
    route enters it, `with uow as session:`, which takes the writer lock where the backend
    has one, and commits at the end of the block (rolls back on an error). The route
    enters it itself, so the commit happens before the response is built, never after it
    was sent (FastAPI runs a dependency's exit after the response)."""
    async for session in _session(request.app.state.write_engine):
        yield UnitOfWork(session)


async def reading(request: Request, work: Callable[[Connection], T]) -> T:
    """A polled read route's database work (its queries and the answer built from
    them), on a connection of its own in one read transaction.

    On SQLite, on the event loop: a few index lookups in an in-process library, a
    millisecond or so. The thread pool would add a hop costing about as much, and with
    32 clients polling, 32 threads taking turns at the GIL answer them all late together
    instead of each in turn (benchmarks/, item 3). On PostgreSQL each query is a round
    trip to a server, so the work waits in the thread pool as a sync route's does. No
    Session either: these reads are Core statements built once (app.store.reads), and a
    Session's dependency and bookkeeping cost more than the queries.
    """
    engine: Engine = request.app.state.read_engine

    def run() -> T:
        with engine.connect() as connection:
            return work(connection)

    if Backend.of(engine).in_process:
        # One turn of the loop first, so that the requests that arrived meanwhile are
        # read and queued: answers then go out in about the order the requests came.
        # Without it, each batch the loop read at once ran to its end before the next
        # read, and a request could wait through almost two batches (p99 twice p50).
        await asyncio.sleep(0)
        return run()
    return await run_in_threadpool(run)


SessionDep = Annotated[Session, Depends(get_session)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
