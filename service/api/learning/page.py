"""GET /label: the labelling page, static files shipped in the package (no build step, no CDN), under the
same Content-Security-Policy as the inspector (scripts, styles and requests from this origin only)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.static_pages import StaticPage

router = APIRouter(tags=["learning"])
PAGE = StaticPage("label", ("label.css", "label.js"), "the labelling page")


@router.get("/label", include_in_schema=False)
async def label_page() -> Response:
    """The labelling page: the next queued text, its scores, one key per label."""
    return PAGE.index()


@router.get("/label/{asset}", include_in_schema=False)
async def label_asset(asset: str) -> Response:
    return PAGE.asset(asset)
