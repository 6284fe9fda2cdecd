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
    default, random_search = body["examples"].values()
    # The form starts from the default job: only the dataset, the rest sized from the table.
    assert default["value"] == {"dataset_id": JOB_SPEC_EXAMPLE["dataset_id"]}
    assert random_search["value"] == JOB_SPEC_EXAMPLE
    preview = doc["paths"]["/api/v1/jobs/preview"]["post"]["requestBody"]["content"]
    assert preview["application/json"]["examples"] == body["examples"]
    csv = customers_frame(rows=40).to_csv(index=False).encode()
    dataset = api.post(
        "/api/v1/datasets", files={"file": ("c.csv", csv)}, data={"target": "churned"}
    ).json()
    for example in (default, random_search):
        spec = {**example["value"], "dataset_id": dataset["id"]}
        answer = api.post("/api/v1/jobs", json=spec)
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
        requests: list[str] = []
        console: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(live.url + "/docs")
        upload = page.locator("#operations-datasets-upload_dataset")
        expect(upload).to_be_visible()
        assert page.locator(".opblock").count() >= 15
        page.screenshot(path=tmp_path / "docs.png", full_page=True)

        # "Try it out" is off at first: an operation opens on what it takes and answers.
        upload.locator(".opblock-summary").click()
        expect(upload.locator("button.try-out__btn")).to_have_text("Try it out")
        expect(upload.locator("input[type=file]")).to_have_count(0)
        # Turned on, it sends a real multipart upload.
        upload.locator("button.try-out__btn").click()
        upload.locator("input[type=file]").set_input_files(data)
        upload.locator("tr[data-property-name=target] input[type=text]").fill("churned")
        # The form pre-selects no task: "infer" lets the server read it from the target
        # (a pre-selected "classification" once made a regression table 289 classes).
        expect(upload.locator("tr[data-property-name=task] select")).to_have_value("infer")
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

        # Submitting a job from the first example (the default job: only the dataset), with
        # the dataset's id pasted in.
        submit = page.locator("#operations-jobs-submit_job")
        submit.locator(".opblock-summary").click()
        submit.locator("button.try-out__btn").click()
        body = submit.locator("textarea.body-param__text")
        spec = json.loads(body.input_value())
        assert spec == {"dataset_id": JOB_SPEC_EXAMPLE["dataset_id"]}
        body.fill(json.dumps({**spec, "dataset_id": answer["id"]}))
        submit.locator("button.execute").click()
        expect(submit.locator(".live-responses-table tbody .response-col_status")).to_have_text(
            "202"
        )

        page.goto(live.url + "/redoc")
        expect(page.locator("[data-section-id='operation/submit_job']")).to_be_attached()
        expect(page.get_by_text("/api/v1/datasets").first).to_be_attached()
        # ReDoc's sidebar logo comes from this server (its bundle names a CDN's copy).
        logo = page.locator("img[alt='redocly logo']")
        expect(logo).to_have_attribute("src", "/static/vendor/redoc/logo-mini.svg")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=logo.element_handle()
        )
        page.screenshot(path=tmp_path / "redoc.png", full_page=True)
        tab.close()
    # Nothing was even asked of another host: neither requested, nor refused by the page's
    # policy (a refusal is a console error), nor stopped by the test's offline routing.
    assert [url for url in requests if not url.startswith((live.url, "data:", "blob:"))] == []
    assert console == []
    assert tab.refused == []
    assert tab.errors == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_name_only_local_assets(api: httpx.Client, path: str) -> None:
    html = api.get(path).text
    assert "cdn.jsdelivr.net" not in html
    assert "fonts.googleapis" not in html
    assert "/static/vendor/" in html or "/redoc/redoc.standalone.js" in html


def test_redoc_bundle_is_the_vendored_one_with_a_local_logo(api: httpx.Client) -> None:
    served = api.get("/redoc/redoc.standalone.js")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    vendored = api.get("/static/vendor/redoc/redoc.standalone.js").content
    assert b"https://cdn.redoc.ly/redoc/logo-mini.svg" in vendored
    # One URL changed, nothing else.
    assert served.content == vendored.replace(
        b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/static/vendor/redoc/logo-mini.svg"
    )
    assert b"cdn.redoc.ly" not in served.content
    assert api.get("/static/vendor/redoc/logo-mini.svg").status_code == 200
