"""Swagger UI and ReDoc work offline, and the OpenAPI document suits client generators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.openapi import JOB_SPEC_EXAMPLE
from app.settings import Settings
from tests.browser import OfflinePage, chromium
from tests.conftest import LiveServer, sqlite_only
from tests.factories import customers_frame

pytestmark = sqlite_only  # nothing here depends on the backend


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for ops in doc["paths"].values() for op in ops.values()]


def test_operation_ids_are_the_route_names(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    ids = {op["operationId"] for op in _operations(doc)}
    assert {"upload_dataset", "submit_job", "read_job", "list_trials", "predict"} <= ids
    assert all("_api_v1_" not in i and not i.endswith(("_get", "_post")) for i in ids), ids


def test_uploaded_file_is_binary_and_every_response_has_a_schema(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    upload = doc["paths"]["/api/v1/datasets"]["post"]["requestBody"]["content"]
    ref = upload["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    file = doc["components"]["schemas"][ref]["properties"]["file"]
    assert file["type"] == "string"
    assert file["format"] == "binary"
    missing = [
        (op["operationId"], status, media_type)
        for op in _operations(doc)
        for status, response in op["responses"].items()
        for media_type, content in response.get("content", {}).items()
        if not content.get("schema")
    ]
    assert missing == []
    model = doc["paths"]["/api/v1/jobs/{job_id}/model"]["get"]["responses"]["200"]["content"]
    assert next(iter(model.values()))["schema"] == {"type": "string", "format": "binary"}


def test_submit_shows_an_example_spec_the_service_accepts(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    body = doc["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    (example,) = body["examples"].values()
    assert example["value"] == JOB_SPEC_EXAMPLE
    csv = customers_frame(rows=40).to_csv(index=False).encode()
    dataset = api.post(
        "/api/v1/datasets", files={"file": ("c.csv", csv)}, data={"target": "churned"}
    ).json()
    answer = api.post("/api/v1/jobs", json={**JOB_SPEC_EXAMPLE, "dataset_id": dataset["id"]})
    assert answer.status_code == 202, answer.text


def test_docs_and_redoc_render_with_no_request_leaving_the_host(
    settings: Settings, tmp_path: Path
) -> None:
    data = tmp_path / "customers.csv"
    customers_frame(rows=40).to_csv(data, index=False)
    with LiveServer(settings) as live, chromium() as browser:
        from playwright.sync_api import expect

        tab = OfflinePage(browser, live.url)
        page = tab.page
        page.goto(live.url + "/docs")
        upload = page.locator("#operations-datasets-upload_dataset")
        expect(upload).to_be_visible()
        assert page.locator(".opblock").count() >= 15
        page.screenshot(path=tmp_path / "docs.png", full_page=True)

        # "Try it out" (on by default) sends a real multipart upload.
        upload.locator(".opblock-summary").click()
        upload.locator("input[type=file]").set_input_files(data)
        upload.locator("tr[data-property-name=target] input[type=text]").fill("churned")
        upload.locator("button.execute").click()
        expect(upload.locator(".live-responses-table tbody .response-col_status")).to_have_text(
            "201"
        )
        answer = json.loads(
            upload.locator(
                ".live-responses-table tbody .response-col_description pre"
            ).first.inner_text()
        )
        assert answer["rows"] == 40

        # Submitting a job from the example, with the dataset's id pasted in.
        submit = page.locator("#operations-jobs-submit_job")
        submit.locator(".opblock-summary").click()
        body = submit.locator("textarea.body-param__text")
        spec = json.loads(body.input_value())
        assert spec == JOB_SPEC_EXAMPLE
        body.fill(json.dumps({**spec, "dataset_id": answer["id"]}))
        submit.locator("button.execute").click()
        expect(submit.locator(".live-responses-table tbody .response-col_status")).to_have_text(
            "202"
        )

        page.goto(live.url + "/redoc")
        expect(page.locator("[data-section-id='operation/submit_job']")).to_be_attached()
        expect(page.get_by_text("/api/v1/datasets").first).to_be_attached()
        page.screenshot(path=tmp_path / "redoc.png", full_page=True)
        tab.close()
    assert tab.refused == []
    assert tab.errors == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_name_only_local_assets(api: httpx.Client, path: str) -> None:
    html = api.get(path).text
    assert "cdn.jsdelivr.net" not in html
    assert "fonts.googleapis" not in html
    assert "/static/vendor/" in html
