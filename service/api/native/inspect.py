"""GET /inspect: the inspector page, three static files shipped in the package (no build step, no CDN).

The page uses only the public API, from the same origin. Its Content-Security-Policy allows scripts,
styles and requests from this origin only: no inline script, no third-party origin, no framing.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from service.errors import NotFound

router = APIRouter(tags=["inspection"])

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "inspector.css": "text/css; charset=utf-8",
    "inspector.js": "text/javascript; charset=utf-8",
}


def _asset(name: str) -> Response:
    content = (
        resources.files("service.api").joinpath("static").joinpath("inspector").joinpath(name).read_bytes()
    )
    return Response(content, media_type=_ASSETS[name], headers=_HEADERS)


@router.get("/inspect", include_in_schema=False)
async def inspector_page() -> Response:
    """The inspector: explanations, trajectories, hidden states and the model card of a typed text."""
    return _asset("index.html")


@router.get("/inspect/{asset}", include_in_schema=False)
async def inspector_asset(asset: str) -> Response:
    if asset not in _ASSETS or asset == "index.html":
        raise NotFound(f"no file {asset[:80]!r} in the inspector")
    return _asset(asset)
