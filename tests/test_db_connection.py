"""PostgreSQL connections are bounded on a dead network: a connection attempt gives up after
TUNER_DB_CONNECT_TIMEOUT_S, and every connection carries TCP keepalives and a timeout on
unacknowledged data, so a silent partition fails a database call instead of hanging it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.settings import get_settings
from app.store.db import make_engine


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings read from the environment afresh (make_engine reads them)."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def _connect_args(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
        return kwargs
    finally:
        engine.dispose()


def test_postgres_connections_carry_a_connect_timeout_and_keepalives(env_settings) -> None:
    kwargs = _connect_args("postgresql+psycopg://tuner:secret@db.invalid/tuner")
    assert kwargs["connect_timeout"] == "10"
    assert kwargs["keepalives"] == "1"
    assert (kwargs["keepalives_idle"], kwargs["keepalives_interval"]) == ("30", "10")
    assert kwargs["keepalives_count"] == "3"
    assert kwargs["tcp_user_timeout"] == "20000"  # under the default lease (30 s)

    env_settings.setenv("TUNER_DB_CONNECT_TIMEOUT_S", "3")
    env_settings.setenv("TUNER_DB_KEEPALIVES_IDLE_S", "5")
    get_settings.cache_clear()
    kwargs = _connect_args("postgresql+psycopg://tuner@db.invalid/tuner?keepalives_count=7")
    assert (kwargs["connect_timeout"], kwargs["keepalives_idle"]) == ("3", "5")
    assert kwargs["keepalives_count"] == "7"  # what the URL names wins


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake but where nothing ever answers: what
    a connection sees of a server behind a partition that dropped its replies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_connection_to_a_server_that_never_answers_gives_up(env_settings, silent_server) -> None:
    env_settings.setenv("TUNER_DB_CONNECT_TIMEOUT_S", "2")
    get_settings.cache_clear()
    engine = make_engine(f"postgresql+psycopg://tuner@127.0.0.1:{silent_server}/tuner")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="timeout"), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert time.monotonic() - started < 15
