"""The dashboard: a single page at `/` and its static files at `/static`, shipped in the package.

Plain HTML, CSS and ES modules (no build step, no Node.js at run time) that talk to the same
REST API as every other client. These routes stay out of the OpenAPI schema (they are not API)
and, being outside /api/v1, need no key: the page asks for one when the API answers 401.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Every script, style, chart and request comes from this server; the browser refuses the
# rest, so the page cannot reach a CDN even by mistake. Inline style attributes are allowed
# because the vendored chart library sizes its elements with them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    # no-cache: the browser revalidates, so an upgraded service serves its new page at once.
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/static`."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
