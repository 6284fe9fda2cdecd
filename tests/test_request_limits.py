"""Hostile job specs and predict rows: body size, list lengths, search and model size,
non-finite and out-of-range numbers, contradictory directions. Real HTTP, both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import ProblemError
from app.search.prediction import shape_predictions, validate_rows
from app.store.models import Dataset
from tests.conftest import LiveServer, make_settings
from tests.factories import assert_problem, customers_frame, upload_ok

JOBS = "/api/v1/jobs"


@pytest.fixture
def limited_api(database_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = make_settings(database_url, tmp_path / "data", max_json_kb=16)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


@pytest.fixture
def dataset_id(limited_api: httpx.Client) -> str:
    return upload_ok(limited_api, customers_frame(), "churned")["id"]


def _raw(api: httpx.Client, text: str) -> httpx.Response:
    """A body as typed (Python's json reads `Infinity`, `NaN`, `1e999`; httpx never sends them)."""
    return api.post(JOBS, content=text, headers={"content-type": "application/json"})


def test_a_json_body_over_the_limit_is_a_413_before_parsing(
    limited_api: httpx.Client, dataset_id: str
) -> None:
    # Valid JSON either way: only its size (whitespace padding) differs.
    spec = json.dumps({"dataset_id": dataset_id})
    response = _raw(limited_api, spec + " " * (17 << 10))
    assert_problem(response, 413, "16 KB", "TUNER_MAX_JSON_KB")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield spec.encode()
        for _ in range(40):
            yield b" " * 1024

    response = limited_api.post(
        JOBS, content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "16 KB")
    assert limited_api.get(JOBS).json()["total"] == 0
    # Under the limit, the same request goes through.
    assert _raw(limited_api, spec + " " * (15 << 10)).status_code == 202


def test_a_choice_of_too_many_values_is_a_422_naming_the_field(
    limited_api: httpx.Client, dataset_id: str
) -> None:
    spec = {"dataset_id": dataset_id, "search_space": {"dropout": {"type": "choice"}}}
    spec["search_space"]["dropout"]["values"] = [0.1] * 1001
    body = assert_problem(limited_api.post(JOBS, json=spec), 422, "at most 1000 items")
    assert body["errors"][0]["loc"] == ["body", "search_space", "dropout", "values"]


def test_a_search_planned_too_large_is_a_422(limited_api: httpx.Client, dataset_id: str) -> None:
    tuner = {
        "algorithm": "hyperband",
        "max_epochs": 10_000,
        # KerasTuner's own smallest rung (the derived one opens fewer brackets).
        "min_epochs": 1,
        "factor": 2,
        "hyperband_iterations": 100,
    }
    response = limited_api.post(JOBS, json={"dataset_id": dataset_id, "tuner": tuner})
    body = assert_problem(response, 422, "TUNER_MAX_SEARCH_EPOCHS", "3846600 trial(s)")
    assert body["errors"][0]["loc"] == ["body", "tuner", "max_epochs"]


def test_a_network_too_large_for_memory_is_a_422(
    limited_api: httpx.Client, dataset_id: str
) -> None:
    space = {
        "units": {"type": "fixed", "value": 65536},
        "num_layers": {"type": "fixed", "value": 3},
    }
    response = limited_api.post(JOBS, json={"dataset_id": dataset_id, "search_space": space})
    body = assert_problem(response, 422, "TUNER_MAX_MODEL_PARAMS", "3 layer(s) of 65536 units")
    assert body["errors"][0]["loc"] == ["body", "search_space", "units"]
    # The seeded default space of the same dataset is well under it.
    assert limited_api.post(JOBS, json={"dataset_id": dataset_id}).status_code == 202


@pytest.mark.parametrize(
    ("fragment", "loc"),
    [
        ('"callbacks": {"early_stopping": {"min_delta": Infinity}}', "min_delta"),
        ('"callbacks": {"reduce_lr_on_plateau": {"min_lr": Infinity}}', "min_lr"),
        ('"callbacks": {"reduce_lr_on_plateau": {"min_lr": 1e999}}', "min_lr"),
        (
            '"search_space": {"dropout": {"type": "float", "min": 0, "max": 0.5, "step": NaN}}',
            "step",
        ),
        ('"search_space": {"l2": {"type": "choice", "values": [1e300]}}', "0"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_a_422_never_stored_as_null(
    limited_api: httpx.Client, dataset_id: str, fragment: str, loc: str
) -> None:
    response = _raw(limited_api, f'{{"dataset_id": "{dataset_id}", {fragment}}}')
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"][-1] == (int(loc) if loc.isdigit() else loc)
    assert limited_api.get(JOBS).json()["total"] == 0


@pytest.mark.parametrize(
    "objective",
    [{"name": "val_loss", "direction": "max"}, {"name": "val_accuracy", "direction": "min"}],
)
def test_a_direction_that_contradicts_its_metric_needs_an_override(
    limited_api: httpx.Client, dataset_id: str, objective: dict[str, Any]
) -> None:
    response = limited_api.post(JOBS, json={"dataset_id": dataset_id, "objective": objective})
    body = assert_problem(response, 422, "direction_override")
    assert body["errors"][0]["loc"] == ["body", "objective", "direction"]
    overridden = {**objective, "direction_override": True}
    response = limited_api.post(JOBS, json={"dataset_id": dataset_id, "objective": overridden})
    assert response.status_code == 202, response.text
    assert response.json()["spec"]["objective"]["direction"] == objective["direction"]


def _numeric_dataset() -> Dataset:
    return Dataset(
        columns=[{"name": "x", "kind": "numeric"}],
        target="y",
        task="classification",
        classes=["a", "b"],
    )


def test_predict_refuses_a_finite_number_beyond_float32_naming_row_and_column() -> None:
    rows = json.loads('[{"x": 1.5}, {"x": 1e300}]')
    with pytest.raises(ProblemError) as caught:
        validate_rows(_numeric_dataset(), rows)
    assert caught.value.status == 422
    assert caught.value.errors == [
        {"loc": ["body", "rows", 1, "x"], "msg": caught.value.errors[0]["msg"], "type": "value"}
    ]
    assert "float32" in caught.value.detail
    assert "row 1, column 'x'" in caught.value.detail


def test_predict_never_answers_null_probabilities() -> None:
    with pytest.raises(ProblemError) as caught:
        shape_predictions(_numeric_dataset(), [[0.3], [float("nan")]])
    assert caught.value.status == 422
    assert caught.value.errors[0]["loc"] == ["body", "rows", 1]
    answer = shape_predictions(_numeric_dataset(), [[0.25]])
    assert answer.predictions[0].probabilities == {"a": 0.75, "b": 0.25}
