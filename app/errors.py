"""Errors the domain raises: each carries the HTTP status it means (app.api.problems renders
them as application/problem+json). Nothing here knows about FastAPI."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ProblemError(Exception):
    """An error the client can act on; `errors` names the offending fields."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers


class NotFound(ProblemError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(404, f"{what} {ident!r} does not exist", title=f"{what} not found")


class InvalidInput(ProblemError):
    def __init__(self, detail: str, *, field: list[str | int] | None = None) -> None:
        errors = [{"loc": field, "msg": detail}] if field is not None else None
        super().__init__(422, detail, title="Invalid input", errors=errors)


class DatasetError(ProblemError):
    """What every dataset check (app.search) raises: a 422 naming the field (the file, the
    target)."""

    def __init__(self, detail: str, *, field: str = "file") -> None:
        super().__init__(
            422,
            detail,
            title="Invalid dataset",
            errors=[{"loc": ["body", field], "msg": detail, "type": "dataset"}],
        )
        self.field = field
