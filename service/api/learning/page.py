"""GET /label: the labelling page, static files shipped in the package (no build step, no CDN), under the
same Content-Security-Policy as the inspector (scripts, styles and requests from this origin only)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from service.api.native.inspect import CONTENT_SECURITY_POLICY
from service.errors import NotFound

router = APIRouter(tags=["learning"])

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "label.css": "text/css; charset=utf-8",
    "label.js": "text/javascript; charset=utf-8",
}


def _asset(name: str) -> Response:
    content = resources.files("service.api").joinpath("static").joinpath("label").joinpath(name).read_bytes()
    return Response(content, media_type=_ASSETS[name], headers=_HEADERS)


@router.get("/label", include_in_schema=False)
async def label_page() -> Response:
    """The labelling page: the next queued text, its scores, one key per label."""
    return _asset("index.html")


@router.get("/label/{asset}", include_in_schema=False)
async def label_asset(asset: str) -> Response:
    if asset not in _ASSETS or asset == "index.html":
        raise NotFound(f"no file {asset[:80]!r} in the labelling page")
    return _asset(asset)
