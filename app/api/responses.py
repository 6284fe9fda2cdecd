"""JSON responses serialized once, by pydantic.

A route that returns a pydantic model has FastAPI validate it again against the
route's response_model (for a sync route, in one more thread-pool hop) and encode the
result with json.dumps. For the hot job routes that second pass was a large share of
the API's CPU per request (benchmarks/, items 3 and 5). A route that returns
`model_response(model)` skips it; its `response_model` still documents the body in
OpenAPI, and the bytes are the same (compact JSON, UTF-8, no alias in these schemas).
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_response(body: BaseModel, *, status_code: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")
