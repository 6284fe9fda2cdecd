"""The one way a write reaches the database: a unit of work.

Library code (app.store.queue, the read and write helpers) takes a session and never
commits; the caller opens a unit of work around it, which holds the backend's writer lock
where it has one (app.store.backend), begins the transaction, commits at the end and rolls
back on an error. The API's writing routes get theirs from app.api.deps; the workers open
theirs with `write_session`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.store.backend import Backend


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """`session` in one write transaction: committed when the block ends, rolled back if
    it raises. Its engine must be a writing one (`Backend.for_writing`)."""
    with Backend.of(session).writer_lock(), session.begin():
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A new session on `engine` in one unit of work."""
    writing = Backend.of(engine).for_writing(engine)
    with Session(writing, expire_on_commit=False) as session, unit_of_work(session):
        yield session


class UnitOfWork:
    """A writing request's unit of work, entered by the route: `with uow as session:`.

    The route enters it itself, not the dependency that makes it: so the commit is over
    before the answer is built, a failed commit is the request's error, and no lock is
    held while the request's body is still being read. After the block, `session` may
    still read (a new transaction), as the cancel route does to answer with what it left.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._stack: ExitStack | None = None

    def __enter__(self) -> Session:
        if self._stack is not None:
            raise RuntimeError("a unit of work does not nest: it already holds the transaction")
        stack = ExitStack()
        session = stack.enter_context(unit_of_work(self.session))
        self._stack = stack
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        return stack.__exit__(exc_type, exc, traceback)
