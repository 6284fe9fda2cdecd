"""Swagger UI at `/docs` and ReDoc at `/redoc`, from assets vendored in the package.

FastAPI's own pages load Swagger UI, ReDoc and their fonts from a CDN, so on a machine
without internet access they are blank. Here every file comes from `/static/vendor`
(see its README for the versions and licences), and nothing else is fetched: Swagger UI's
validator badge (a request to validator.swagger.io) is off, ReDoc uses the system fonts,
and ReDoc's sidebar logo is served from here too (REDOC_LOGO).
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, FastAPI, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from app.api.routes.dashboard import STATIC_DIR

VENDOR = "/static/vendor"
SWAGGER_UI_PARAMETERS = {
    "validatorUrl": None,
    # Off: a reader first sees what each operation takes and answers; "Try it out" opens
    # the form (and sends nothing until Execute).
    "tryItOutEnabled": False,
    "persistAuthorization": True,
    "displayRequestDuration": True,
}

# ReDoc 2.5.1's sidebar footer is an <img> of this URL that no option turns off. The
# bundle, unmodified on disk, is served at /redoc/redoc.standalone.js with the URL pointing
# at a local copy, so the browser never asks for it (the policy below would block it, but
# the request would still show in the console and in any proxy's log).
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_BUNDLE = STATIC_DIR / "vendor" / "redoc" / "redoc.standalone.js"
LOCAL_REDOC_LOGO = f"{VENDOR}/redoc/logo-mini.svg"

# The browser refuses anything not from this server. Inline scripts are FastAPI's page
# bootstraps; ReDoc runs its search index in a blob: worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


@cache
def _redoc_bundle() -> bytes:
    """The vendored bundle with its logo's URL made local (read once per process)."""
    source = REDOC_BUNDLE.read_bytes()
    if REDOC_LOGO.encode() not in source:  # a new ReDoc: look for its logo again
        raise RuntimeError(f"{REDOC_BUNDLE} no longer names {REDOC_LOGO}")
    return source.replace(REDOC_LOGO.encode(), LOCAL_REDOC_LOGO.encode())


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and Swagger UI's OAuth2 redirect page (FastAPI's are turned off)."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
                oauth2_redirect_url="/docs/oauth2-redirect",
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    @router.get("/docs/oauth2-redirect")
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc/redoc.standalone.js")
    def redoc_bundle() -> Response:
        return Response(
            _redoc_bundle(),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url="/redoc/redoc.standalone.js",
                redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
                with_google_fonts=False,
            )
        )

    app.include_router(router)
