"""GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.observability import metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_metrics() -> Response:
    """Prometheus metrics of the server (with --workers N: of every worker, whichever answers)."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
