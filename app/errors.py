"""One error type with a status code, rendered by one handler as application/problem+json."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error the client can act on; `errors` names the offending fields."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors


class NotFound(ProblemError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(404, f"{what} {ident!r} does not exist", title=f"{what} not found")


class InvalidInput(ProblemError):
    def __init__(self, detail: str, *, field: list[str | int] | None = None) -> None:
        errors = [{"loc": field, "msg": detail}] if field is not None else None
        super().__init__(422, detail, title="Invalid input", errors=errors)


def problem_response(
    status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _jsonable_errors(errors: list[Any]) -> list[dict[str, Any]]:
    # pydantic puts exception objects under "ctx"; keep only what serializes.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(list(exc.errors()))
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in errors
        )
        return problem_response(422, "Invalid input", detail or "invalid request", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code, HTTPStatus(exc.status_code).phrase, str(exc.detail)
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_away(_request: Request, exc: Exception) -> JSONResponse:
        # Connection refused, server restarting, SQLite busy past its timeout: all
        # transient. pool_pre_ping reconnects once the database is back.
        logger.warning("database unavailable", extra={"error": str(exc).splitlines()[0]})
        response = problem_response(
            503, "Database unavailable", "the database is unavailable; retry shortly"
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return problem_response(500, "Internal Server Error", "an unexpected error occurred")
