"""The OpenAPI document as client generators and Swagger UI need it.

- Operation ids are the route functions' names (`upload_dataset`, `submit_job`), short and
  stable, instead of FastAPI's `upload_dataset_api_v1_datasets_post`.
- An uploaded file is `type: string, format: binary` beside OpenAPI 3.1's
  `contentMediaType`: generators such as openapi-python-client read only the former (with
  the latter alone they send the file as a text field), Swagger UI understands both.
- A file download (the model, TensorBoard logs) gets a binary schema, so every response
  has one.
- Submitting a job shows a realistic example spec in "Try it out".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

BINARY = {"type": "string", "format": "binary"}

JOB_SPEC_EXAMPLE: dict[str, Any] = {
    "dataset_id": "paste the id POST /api/v1/datasets answered",
    "tuner": {"algorithm": "random_search", "max_trials": 10, "seed": 42},
    "objective": {"name": "val_accuracy", "direction": "max"},
    "search_space": {
        "num_layers": {"type": "int", "min": 1, "max": 3},
        "units": {"type": "pow2"},
        "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
        "activation": {"type": "choice", "values": ["relu", "tanh"]},
        "batch_size": {"type": "choice", "values": [32, 64, 128]},
    },
    "training": {"epochs": 20, "validation_split": 0.2},
    "callbacks": {
        "early_stopping": {"monitor": "val_loss", "patience": 5, "restore_best_weights": True},
        "reduce_lr_on_plateau": None,
        "tensorboard": False,
    },
    "max_runtime_s": 600,
}


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the route function's name."""
    return route.name


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def _form_fields(schemas: dict[str, Any]) -> None:
    # A multipart form field is absent or a string, never null: `anyOf [string, null]` makes
    # Swagger UI prefill an optional field with "string" (a bad `task`), and generators
    # wrap it in a union type. Optional here means "not required", as in OpenAPI 3.0.
    for name, schema in schemas.items():
        if not name.startswith("Body_"):
            continue
        for field in schema.get("properties", {}).values():
            variants = field.get("anyOf")
            if variants and len(variants) == 2 and {"type": "null"} in variants:
                field.pop("anyOf")
                field.update(next(v for v in variants if v != {"type": "null"}))
            if field.get("type") == "string" and "enum" not in field and "format" not in field:
                # An empty example: Swagger UI leaves the field empty (not "string"), and
                # does not send it unless the user types something.
                field.setdefault("example", "")


def _polish(doc: dict[str, Any]) -> None:
    _form_fields(doc.get("components", {}).get("schemas", {}))
    for schema in _schemas(doc.get("components", {}).get("schemas", {})):
        if schema.get("type") == "string" and "contentMediaType" in schema:
            schema.setdefault("format", "binary")
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                for media_type, content in response.get("content", {}).items():
                    if not content.get("schema"):
                        is_text = media_type.startswith("text/")
                        content["schema"] = {"type": "string"} if is_text else dict(BINARY)
    for path in ("/api/v1/jobs", "/api/v1/jobs/preview"):
        submit = doc.get("paths", {}).get(path, {}).get("post")
        if submit is None:
            continue
        body = submit["requestBody"]["content"]["application/json"]
        # The first example is what Swagger UI's form starts from: the default job, which
        # derives its budget, epochs and patience from the table.
        body["examples"] = {
            "default": {
                "summary": "The default job: sized from the table",
                "value": {"dataset_id": JOB_SPEC_EXAMPLE["dataset_id"]},
            },
            "random_search": {"summary": "A random search", "value": JOB_SPEC_EXAMPLE},
        }


def install(app: FastAPI) -> None:
    """Polish the document app.openapi() builds (after every other customisation)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _polish(build())  # build() caches the document in app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
