"""How the API answers: problems, app.errors' domain errors, validation and database
failures rendered by one set of handlers as application/problem+json (RFC 9457); and a
route's pydantic body serialized once (`model_response`)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import ProblemError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="where: body / query / path, then the field path")
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """Every error the API returns, as RFC 9457 problem details (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="for invalid input: each offending field and what is wrong"
    )


def _problem_doc(description: str, **extra: Any) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}, **extra}


# The OpenAPI `responses` of every problem status the API answers; routes pick theirs
# with `problem_responses(...)`, and install_error_handlers adds the Problem schema.
PROBLEM_RESPONSES: dict[int, dict[str, Any]] = {
    400: _problem_doc("Unparseable request body (not UTF-8 JSON, broken multipart)"),
    401: _problem_doc(
        "Missing or unknown API key (only when the service has TUNER_API_KEYS)",
        headers={"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    ),
    404: _problem_doc("Not found"),
    409: _problem_doc("Conflicts with the resource's current state"),
    413: _problem_doc("Upload or request body too large"),
    422: _problem_doc("Invalid input; `errors` names each offending field"),
    429: _problem_doc("Too many jobs queued or running for this API key (TUNER_MAX_JOBS_PER_KEY)"),
    503: _problem_doc("Database (or prediction process) unavailable; retry shortly"),
    507: _problem_doc("The data directory's disk (or the database's) is full"),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` for a route or router that can answer these problems."""
    return {status: PROBLEM_RESPONSES[status] for status in statuses}


def problem_response(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def model_response(body: BaseModel, *, status_code: int = 200) -> Response:
    """`body` as JSON, serialized once, by pydantic. A route that returns the model itself
    has FastAPI validate it again against its response_model (for a sync route, in one
    more thread-pool hop) and encode the result with json.dumps: for the job routes, polled
    and submitted to most, that second pass was a large share of their CPU
    (docs/benchmarks.md, "Figures that explain design choices"). The route's
    `response_model` still documents the body in OpenAPI, and the bytes are the same
    (compact JSON, UTF-8, no alias in these schemas)."""
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")


def _jsonable_errors(errors: list[Any]) -> list[dict[str, Any]]:
    # pydantic puts exception objects under "ctx"; keep only what serializes.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]


def _install_problem_schema(app: FastAPI) -> None:
    """Put the Problem schema into the OpenAPI components that PROBLEM_RESPONSES refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # caches itself in app.openapi_schema
            problem = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}", mode="serialization"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem.pop("$defs", {}))
            components[Problem.__name__] = problem
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    _install_problem_schema(app)

    @app.exception_handler(ProblemError)
    async def _problem(_request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.errors, exc.headers)

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

    @app.exception_handler(DataError)
    async def _unstorable(_request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the request carried (a number out of its range, a NUL
        # character in text). Routes validate what they know; this keeps any other a 422.
        logger.warning("database refused a value", extra={"error": str(exc).splitlines()[0]})
        return problem_response(
            422,
            "Invalid input",
            "a value is out of range or has a character the database cannot store (NUL)",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return problem_response(500, "Internal Server Error", "an unexpected error occurred")
