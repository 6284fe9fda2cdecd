"""Schemathesis fuzzes every operation in /openapi.json against the live API over real HTTP.

A bounded, derandomized run per backend, of valid and of invalid requests: no response
may be a 5xx, and every response must match the schema (a documented status code, its
documented content type, headers and body; errors are application/problem+json).

The generated cases are driven by Hypothesis through `operation.as_strategy()`:
schemathesis' own pytest loader for a schema served by a fixture
(`schemathesis.pytest.from_fixture`) fails on pytest 9 (it sets `Function._nodeid`).
"""

from __future__ import annotations

from typing import Any

import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.settings import Settings
from tests.conftest import LiveServer
from tests.factories import customers_frame, submit, upload_ok

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 30  # per operation and generation mode
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure, as found
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
# Strings that once reached the database unchecked (PostgreSQL refuses a NUL character).
# Schemathesis never puts a control character in a path, so NUL ids in paths are covered
# by test_bad_input.py instead.
AWKWARD_STRINGS = ["\x00", "a\x00b", "é/ \u2028", "0" * 64]


def _config(dataset_id: str, job_id: str) -> schemathesis.Config:
    """Ids are often the seeded ones, so routes get past their 404, or awkward strings;
    every other string field sometimes gets an awkward string too."""
    return schemathesis.Config.from_dict(
        {
            "request-timeout": 30,
            "generation": {
                "dictionaries": {"string": {"dictionary": "awkward", "probability": 0.2}}
            },
            "dictionaries": {
                "awkward": {"values": AWKWARD_STRINGS},
                "dataset_ids": {"values": [dataset_id, dataset_id, *AWKWARD_STRINGS]},
                "job_ids": {"values": [job_id, job_id, *AWKWARD_STRINGS]},
            },
            "parameters": {
                "path.dataset_id": {"dictionary": "dataset_ids", "probability": 0.6},
                "body.dataset_id": {"dictionary": "dataset_ids", "probability": 0.6},
                "path.job_id": {"dictionary": "job_ids", "probability": 0.6},
            },
        }
    )


def _fuzz(operation: Any, mode: GenerationMode) -> str | None:
    """Run one operation's examples: the first failure's report, or None."""

    @FUZZ_SETTINGS
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is the latter
        return f"{operation.label} ({mode.value} data): {exc}"
    return None


def test_every_operation_answers_within_its_schema(settings: Settings) -> None:
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        # One dataset and one queued job (no worker runs, so no job ever succeeds and
        # predict answers 409 for it), so that valid ids exist.
        dataset = upload_ok(api, customers_frame(rows=60), "churned")
        job = submit(api, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2})
        schema = schemathesis.openapi.from_url(
            f"{live.url}/openapi.json", config=_config(dataset["id"], job["id"])
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        paths = {operation.path for operation in operations}
        assert "/api/v1/jobs/{job_id}/trials/{trial_id}/metrics.csv" in paths
        assert not paths & {"/docs", "/redoc", "/openapi.json"}

        failures = []
        for operation in operations:
            modes = [GenerationMode.POSITIVE]
            # A free-form string path parameter has no invalid value: only a query or a
            # body can be made invalid.
            if len(operation.query) or len(operation.body):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                if failure := _fuzz(operation, mode):
                    failures.append(failure)
        # The seeded rows survived: a 409 kept the dataset, the job is still there.
        assert api.get(f"/api/v1/datasets/{dataset['id']}").status_code == 200
        assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert not failures, "\n\n".join(failures)
