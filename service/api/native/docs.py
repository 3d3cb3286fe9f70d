"""GET /docs: Swagger UI with its assets served by the service itself (no CDN), so the page works on a
host without internet. The assets are vendored under ``static/swagger-ui`` (see its README); this is
FastAPI's documented way to self-host them (``get_swagger_ui_html`` with local URLs)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import Response

from service.api.page_headers import page_headers
from service.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_CACHE = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    """The interactive API documentation."""
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - API documentation",
        swagger_js_url="/docs/swagger-ui-bundle.js",
        swagger_css_url="/docs/swagger-ui.css",
        swagger_favicon_url="/docs/favicon-32x32.png",
    )
    page.headers.update(page_headers(bytes(page.body)))
    return page


@router.get("/docs/{asset}")
async def swagger_ui_asset(asset: str) -> Response:
    if asset not in ASSETS:
        raise NotFound(f"no file {asset[:80]!r} in the API documentation")
    folder = resources.files("service.api").joinpath("static").joinpath("swagger-ui")
    return Response(folder.joinpath(asset).read_bytes(), media_type=ASSETS[asset], headers=_CACHE)
