"""GET /inspect: the inspector page, three static files shipped in the package (no build step, no CDN).

The page uses only the public API, from the same origin. Its Content-Security-Policy allows scripts,
styles and requests from this origin only: no inline script, no third-party origin, no framing.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.static_pages import StaticPage

router = APIRouter(tags=["inspection"])
PAGE = StaticPage("inspector", ("inspector.css", "inspector.js"), "the inspector")


@router.get("/inspect", include_in_schema=False)
async def inspector_page() -> Response:
    """The inspector: explanations, trajectories, hidden states and the model card of a typed text."""
    return PAGE.index()


@router.get("/inspect/{asset}", include_in_schema=False)
async def inspector_asset(asset: str) -> Response:
    return PAGE.asset(asset)
