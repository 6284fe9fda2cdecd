"""FastAPI dependencies: settings and one database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.db import for_writing
from app.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session for reading."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    """A session for routes that write; they open `with session.begin():` themselves,
    so the commit happens before the response is built, never after it was sent."""
    with Session(for_writing(request.app.state.engine), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
