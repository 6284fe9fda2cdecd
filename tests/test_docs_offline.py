"""The documentation site browses from its files, as a reader who opens build/site/index.html
does: menu links open pages (not folder listings), the search finds pages, and no request
leaves the machine (no Google Fonts, no CDN script). Built here with the project's own
mkdocs.yml, in strict mode, into the test's directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.browser import chromium
from tests.conftest import ROOT

MKDOCS = Path(sys.executable).parent / "mkdocs"


def test_the_built_site_works_from_disk_with_nothing_fetched(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    html = (site / "index.html").read_text()
    assert "fonts.googleapis" not in html
    assert "fonts.gstatic" not in html

    with chromium() as browser:
        from playwright.sync_api import expect

        context = browser.new_context()
        requested: list[str] = []
        refused: list[str] = []

        def route(r: object) -> None:
            url = r.request.url  # type: ignore[attr-defined]
            if url.startswith(("file://", "data:", "blob:", "about:")):
                r.continue_()  # type: ignore[attr-defined]
            else:
                refused.append(url)
                r.abort("internetdisconnected")  # type: ignore[attr-defined]

        context.route("**/*", route)
        page = context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((site / "index.html").as_uri())

        # A menu link opens the page itself (not a folder listing of dashboard/).
        menu = page.locator(".md-nav--primary a.md-nav__link")
        menu.filter(has_text="Dashboard").first.click()
        page.wait_for_url("**/dashboard.html")
        expect(page.locator("article h1")).to_contain_text("The dashboard")
        menu.filter(has_text="Python client and CLI").first.click()
        page.wait_for_url("**/client.html")

        # The search box is there and finds pages (its index inlined, its worker shimmed).
        search = page.locator("input.md-search__input")
        expect(search).to_be_visible()
        search.fill("pareto")
        expect(page.locator(".md-search-result__item").first).to_be_visible()
        context.close()

    assert refused == []
    assert [url for url in requested if not url.startswith(("file://", "data:", "blob:"))] == []
    assert errors == []
