"""FastAPI dependencies: settings and one database session per request.

They are `async def` on purpose. FastAPI runs a plain `def` dependency in its thread
pool, and each hop there costs about as much CPU as a small route's own work (the
POST /jobs and GET /jobs/{id} benchmarks, items 3 and 5). None of these wait on
anything when they start: a Session opens its connection at its first query, which
runs in the route's own thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def _session(engine: Engine) -> AsyncIterator[Session]:
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if engine.dialect.name == "sqlite":
            # Handing the connection back rolls it back: an in-process call that
            # takes microseconds, cheaper than the hop to a thread.
            session.close()
        else:
            # A round trip to the server: not on the event loop.
            await run_in_threadpool(session.close)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for reading: one snapshot for the whole request (app.db.for_reading)."""
    async for session in _session(request.app.state.read_engine):
        yield session


async def get_write_session(request: Request) -> AsyncIterator[Session]:
    """A session for routes that write; they open `with session.begin():` themselves,
    so the commit happens before the response is built, never after it was sent."""
    async for session in _session(request.app.state.write_engine):
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
