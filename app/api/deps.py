"""FastAPI dependencies: settings, a reading session, and a writing route's unit of work.

One way for a route to read and one to write:

- A route that reads is a plain `def` that takes `SessionDep`, a Session on the read
  engine (one snapshot for the whole request), and hands it, or its `.connection()`, to
  the app.store read functions. Sync, as TensorFlow and the rest of the service are:
  FastAPI runs the route in its thread pool, so a slow query, a file sent or a tarball
  built never holds the event loop, whatever the backend. The store's polled reads keep
  their Core statements built once (app.store.reads); what they give up is running on the
  event loop on SQLite, which an async twin of each polled route bought at the cost of
  a second way to reach the database (docs/benchmarks.md, "Figures that explain design
  choices").
- A route that writes takes `UnitOfWorkDep` and enters it, `with uow as session:`, around
  the app.store write functions it calls, which take the session and never commit.

The dependencies themselves are `async def` on purpose: FastAPI runs a plain `def`
dependency in its thread pool, a hop that costs about as much CPU as a small route's own
work, and none of these waits on anything when it starts: a Session opens its connection
at its first query, which runs in the route's own thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.settings import Settings
from app.store.backend import Backend
from app.store.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def _session(engine: Engine) -> AsyncIterator[Session]:
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        try:
            if Backend.of(engine).in_process:
                # Handing the connection back rolls it back: an in-process call, cheaper
                # than the hop to a thread.
                session.close()
            else:
                # A round trip to the server: not on the event loop.
                await run_in_threadpool(session.close)
        except DBAPIError:
            # The server ended the connection while the route worked on (a transaction
            # left idle past its bound, app.store.backend.network_options): what the route
            # wrote was committed in its unit of work or not at all, so the rollback that
            # failed here had nothing left to undo. Not the request's error.
            logger.warning("the database had ended this request's connection", exc_info=True)


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


SessionDep = Annotated[Session, Depends(get_session)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
