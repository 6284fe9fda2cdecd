"""The unit of work (app.store.unit_of_work): it commits at its end, rolls back on an error,
and every writing route runs inside one, behind SQLite's writer lock (app.store.backend)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.backend import Backend, PostgreSQLBackend, SQLiteBackend
from app.store.db import for_writing
from app.store.models import Dataset, Job
from app.store.unit_of_work import UnitOfWork
from tests.factories import csv_bytes, customers_frame, dataset_row, submit, upload, upload_ok

HOLD_S = 1.5  # far longer than any of these writes takes once it has the lock


def _datasets(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count(Dataset.id))) or 0


def _add_then_fail(uow: UnitOfWork, engine: Engine) -> None:
    with uow as session:
        session.add(dataset_row())
        session.flush()
        assert _datasets(engine) == 0  # not committed yet: another connection sees nothing
        raise ValueError("changed my mind")


def test_a_unit_of_work_commits_at_its_end_and_rolls_back_on_an_error(engine: Engine) -> None:
    uow = UnitOfWork(Session(for_writing(engine), expire_on_commit=False))
    with pytest.raises(ValueError, match="changed my mind"):
        _add_then_fail(uow, engine)
    assert _datasets(engine) == 0

    with uow as session:  # one after another, on the same session
        session.add(dataset_row())
    assert _datasets(engine) == 1

    with uow, pytest.raises(RuntimeError, match="does not nest"), uow:
        pass
    uow.session.close()


def test_the_backend_is_told_by_the_url() -> None:
    assert isinstance(Backend.for_url("sqlite:///var/tuner.db"), SQLiteBackend)
    assert isinstance(Backend.for_url("postgresql+psycopg://u@h/db"), PostgreSQLBackend)
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Backend.for_url("mysql://u@h/db")


def _writes(api: httpx.Client, engine: Engine) -> dict[str, tuple[Callable[[], Any], Any]]:
    """Each writing route: the request, and what it leaves in the database."""
    frame = customers_frame(rows=60)
    dataset = upload_ok(api, frame, "churned")
    # Other rows each: the same file and target uploaded again is the same dataset.
    spare = upload_ok(api, customers_frame(rows=60, seed=1), "churned")
    job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 1})

    def jobs() -> int:
        with Session(engine) as session:
            return session.scalar(select(func.count(Job.id))) or 0

    def status() -> str:
        with Session(engine) as session:
            return session.get_one(Job, job["id"]).status

    return {
        "upload": (
            lambda: upload(api, csv_bytes(customers_frame(rows=60, seed=2)), target="churned"),
            lambda: _datasets(engine),
        ),
        "delete dataset": (
            lambda: api.delete(f"/api/v1/datasets/{spare['id']}"),
            lambda: _datasets(engine),
        ),
        "submit": (lambda: api.post("/api/v1/jobs", json={"dataset_id": dataset["id"]}), jobs),
        "cancel": (lambda: api.post(f"/api/v1/jobs/{job['id']}/cancel"), status),
    }


@pytest.mark.parametrize("route", ["upload", "delete dataset", "submit", "cancel"])
def test_each_writing_route_takes_the_sqlite_writer_lock(
    api: httpx.Client, engine: Engine, settings: Settings, route: str
) -> None:
    request, state = _writes(api, engine)[route]
    before = state()
    sqlite = Backend.for_url(settings.database_url).name == "sqlite"
    answers: list[httpx.Response] = []
    writer = threading.Thread(target=lambda: answers.append(request()))
    # The API runs in this process: this thread holding SQLite's writer lock is one more
    # writer of the API's. PostgreSQL's routes never wait for it.
    with Backend.for_url("sqlite://").writer_lock():
        writer.start()
        writer.join(timeout=HOLD_S if sqlite else 30)
        if sqlite:
            assert writer.is_alive(), "the write did not wait for the lock"
            assert state() == before, "the write went ahead without the lock"
        else:
            assert not writer.is_alive()
    writer.join(timeout=30)
    [answer] = answers
    assert answer.status_code < 300, answer.text
    assert state() != before
