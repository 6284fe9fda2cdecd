"""PostgreSQL connections are bounded on a dead network: a connection attempt gives up after
TUNER_DB_CONNECT_TIMEOUT_S, and every connection carries TCP keepalives and a timeout on
unacknowledged data, so a silent partition fails a database call instead of hanging it. The
server's end is bounded too: a host that vanishes inside a transaction does not keep its
row locks for the server's two-hour TCP keepalive."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from app.api.deps import _session
from app.settings import get_settings
from app.store.db import make_engine
from tests.conftest import postgresql_only


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
    assert kwargs["options"] == (
        "-c idle_in_transaction_session_timeout=15000 -c tcp_keepalives_idle=30"
        " -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 -c tcp_user_timeout=20000"
    )

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


@postgresql_only
def test_a_transaction_its_host_left_open_frees_its_rows(env_settings, database_url) -> None:
    """A connection that takes a row lock and then goes silent, as a host that lost power
    between two statements: the server ends its session, and another worker's write to the
    row goes through within seconds instead of waiting on it for hours."""
    env_settings.setenv("TUNER_LEASE_S", "2")  # the server's bound: 5 s, its floor
    get_settings.cache_clear()
    vanished, survivor = make_engine(database_url), make_engine(database_url)
    try:
        with survivor.begin() as conn:
            assert conn.execute(text("SHOW tcp_keepalives_idle")).scalar_one() == "30"
            conn.execute(text("CREATE TABLE held (id int PRIMARY KEY, n int)"))
            conn.execute(text("INSERT INTO held VALUES (1, 0)"))
        silent = vanished.connect()
        silent.begin()
        silent.execute(text("UPDATE held SET n = n + 1 WHERE id = 1"))  # and nothing more
        started = time.monotonic()
        with survivor.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '60s'"))
            conn.execute(text("UPDATE held SET n = n + 10 WHERE id = 1"))
        waited = time.monotonic() - started
        with survivor.connect() as conn:
            assert conn.execute(text("SELECT n FROM held")).scalar_one() == 10  # its +1 undone
        assert 3 < waited < 30, waited
        with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
            silent.execute(text("SELECT 1"))
        silent.invalidate()
    finally:
        vanished.dispose()
        survivor.dispose()


@postgresql_only
def test_a_request_whose_connection_the_server_ended_still_answers(
    env_settings, database_url
) -> None:
    """A route that read and then worked on past the server's bound on an idle transaction
    (a first prediction waits seconds for its process): the session's end, a rollback the
    server no longer takes, is not the request's error."""
    env_settings.setenv("TUNER_LEASE_S", "2")  # the server's bound: 5 s
    get_settings.cache_clear()
    engine = make_engine(database_url)

    async def request() -> None:
        session_dependency = _session(engine)
        session = await anext(session_dependency)
        assert session.execute(text("SELECT 1")).scalar_one() == 1  # the snapshot begins
        time.sleep(6)
        with pytest.raises(StopAsyncIteration):
            await anext(session_dependency)  # the route returned: the session closes

    try:
        asyncio.run(request())
    finally:
        engine.dispose()
