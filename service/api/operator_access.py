"""The operator's switches over the routes that are not inference: who may read ``/metrics``, ``/docs`` and
``/openapi.json`` (``open``, ``api-key``, ``admin`` or ``off``), and which browser origins may call the
service (CORS, off unless ``LSTM_SERVICE_CORS_ORIGINS`` names some).

A route that is ``off`` is not mounted: it answers 404 like any unknown path. A protected one needs the
same credential, checked the same way, as the routes it shares it with (:mod:`service.api.security`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from service.api.common import error_responses
from service.api.native import docs as api_docs
from service.api.native import metrics as metrics_route
from service.api.security import require_admin, require_api_key
from service.settings import Settings

OPENAPI_PATH = "/openapi.json"
_CHECKS = {"api-key": require_api_key, "admin": require_admin}
# What a page on another origin may send and read: the credential headers, and the headers answers carry.
_CORS_REQUEST_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "X-Request-Id")
_CORS_EXPOSED_HEADERS = ("X-Request-Id", "X-Queue-Time", "X-Inference-Time", "Retry-After")


def openapi_url(settings: Settings) -> str | None:
    """FastAPI's own (always open) ``/openapi.json`` route, or None where :func:`include_operator_routes`
    mounts a guarded one or none."""
    return OPENAPI_PATH if settings.docs_access == "open" else None


def _guard(access: str) -> dict[str, Any]:
    check = _CHECKS.get(access)
    return {} if check is None else {"dependencies": [Depends(check)], "responses": error_responses(401)}


def include_operator_routes(app: FastAPI, settings: Settings) -> None:
    """Mount ``/metrics`` and the API documentation as ``metrics_access`` and ``docs_access`` say."""
    if settings.metrics_access != "off":
        app.include_router(metrics_route.router, **_guard(settings.metrics_access))
    if settings.docs_access == "off":
        return
    guard = _guard(settings.docs_access)
    app.include_router(api_docs.router, dependencies=guard.get("dependencies"))
    if settings.docs_access != "open":

        async def openapi(request: Request) -> JSONResponse:
            return JSONResponse(request.app.openapi())

        app.add_api_route(
            OPENAPI_PATH,
            openapi,
            methods=["GET"],
            include_in_schema=False,
            dependencies=guard["dependencies"],
        )


def with_cors(front: ASGIApp, settings: Settings) -> ASGIApp:
    """``front`` behind Starlette's CORS layer when origins are configured (it answers preflights itself
    and adds the ``Access-Control-*`` headers to answers); ``front`` unchanged otherwise."""
    if not settings.cors_origins:
        return front
    return CORSMiddleware(
        front,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=list(_CORS_REQUEST_HEADERS),
        expose_headers=list(_CORS_EXPOSED_HEADERS),
        max_age=600,
    )
