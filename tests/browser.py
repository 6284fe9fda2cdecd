"""Debian's headless Chromium, driven through Playwright, for the browser tests.

Chromium missing is a skip on a workstation and a failure where TUNER_TEST_REQUIRE_CHROMIUM=1
(`make test` sets it when /usr/bin/chromium exists; `.ci/run` installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Waits on the page: generous, since the suite shares two cores with worker processes.
UI_TIMEOUT_MS = 30_000


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Playwright browser (skips, or fails when required, without Chromium)."""
    if not CHROMIUM.exists():
        if os.environ.get("TUNER_TEST_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"TUNER_TEST_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class OfflinePage:
    """A page on which every request that does not go to `origin` is refused and recorded,
    as on a machine without internet access; script errors are recorded too."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.origin = origin
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(UI_TIMEOUT_MS)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith((self.origin, "data:", "blob:")):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("internetdisconnected")

    def close(self) -> None:
        self.context.close()
