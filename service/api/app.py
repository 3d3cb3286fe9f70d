"""The FastAPI application: :func:`create_app` builds it; its lifespan loads and verifies every model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from service import __version__
from service.api.bodies import document_bodies
from service.api.common import error_responses
from service.api.deps import Services
from service.api.errors import install_error_handlers
from service.api.gate import Gate
from service.api.hotpath import HotRoute, HotRoutes, documented_twin
from service.api.learning import include as include_learning
from service.api.middleware import Front, LastResort
from service.api.native import (
    admin,
    classify,
    embed,
    explain,
    health,
    hidden_states,
    models,
    rollout,
    tokenize,
)
from service.api.native import inspect as inspector
from service.api.oip import routes as oip
from service.api.operator_access import include_operator_routes, openapi_url, with_cors
from service.api.responses import OrjsonResponse
from service.api.security import require_api_key
from service.api.tei import routes as tei
from service.engine.coordination import Coordinator, shared_folder
from service.engine.engine import Engine
from service.engine.reloader import StorePoller
from service.settings import Settings, get_settings

if TYPE_CHECKING:
    from service.observability.tracing_export import Tracing

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Classify text with embedding + LSTM models exported to ONNX and served by onnxruntime.

Every route takes JSON and answers JSON; errors are `{"error": "...", "error_type": "..."}`.
`model` is optional everywhere (default: the service's default model); every answer says which
model and version answered, and answers a model computed carry `X-Queue-Time` and `X-Inference-Time`
(milliseconds).

With `LSTM_SERVICE_API_KEY` set, the inference and model routes need `Authorization: Bearer <key>` or
`X-API-Key: <key>`. The `/admin` routes (hot reload, pinning, unloading) exist only when
`LSTM_SERVICE_ADMIN_TOKEN` is set and need `Authorization: Bearer <token>`. Health routes are always
open; `/metrics` and these docs unless the operator guards them (`LSTM_SERVICE_METRICS_ACCESS`,
`LSTM_SERVICE_DOCS_ACCESS`).
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = await Engine.start(settings)
    tracing = _start_tracing(app, engine) if settings.tracing else None
    registry = engine.registry
    # With --workers N every admin change goes through a log all workers apply (service.engine.coordination);
    # a worker that starts late applies it first.
    coordinator = Coordinator(
        registry, shared_folder(settings.workers), settings.workers, on_rollout=engine.router.refresh_one
    )
    await run_in_threadpool(coordinator.catch_up)
    watcher = asyncio.create_task(coordinator.watch())
    app.state.services = Services(settings, engine, coordinator)
    ready = "ready" if registry.is_ready(settings.readiness) else "NOT ready (see /readyz)"
    logger.log(
        logging.INFO if registry.ready else logging.WARNING,  # a failed model is a warning under any policy
        "serving %d model(s) from %s: %s",
        len(registry.names),
        settings.model_store,
        ready,
    )
    grpc_server = None
    if settings.grpc_port is not None:  # the Open Inference Protocol over gRPC (service/api/oip_grpc)
        from service.api.oip_grpc.launch import start_grpc

        grpc_server = await start_grpc(app.state.services)
    poller = None
    if settings.reload_interval_seconds > 0:
        app.state.poller = StorePoller(  # tests read .polls
            registry, settings.reload_interval_seconds, settings.reload_settle_seconds
        )
        poller = asyncio.create_task(app.state.poller.run())
    try:
        yield
    finally:
        if grpc_server is not None:
            await grpc_server.stop()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        coordinator.leave()
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await engine.aclose()
        if tracing is not None:  # after the last batch; bounded, whether the collector answers or not
            await asyncio.to_thread(tracing.shutdown)
        # The access log is written in bulk; a worker process exits without running atexit hooks.
        for handler in logging.getLogger("service.access").handlers:
            handler.flush()


def _start_tracing(app: FastAPI, engine: Engine) -> Tracing:
    """This process's OpenTelemetry exporter, handed to the front layer and the engine's batch hook."""
    from service.observability.tracing_export import start  # the tracing extra, imported only when on

    tracing = start()
    engine.tracing = tracing
    if isinstance(app, ServiceApp) and app.front_layer is not None:
        app.front_layer.tracing = tracing
    return tracing


# Routes answered past FastAPI (see service.api.hotpath); each one's FastAPI twin is generated from it.
HOT_ROUTES: tuple[HotRoute, ...] = (classify.HOT_ROUTE, *oip.HOT_ROUTES, *tei.HOT_ROUTES)


class ServiceApp(FastAPI):
    """FastAPI behind one plain ASGI layer (:class:`service.api.middleware.Front`) for HTTP requests.

    The front layer answers the hot routes itself and hands every other request to FastAPI's own stack
    (:meth:`framework`). Put in front of FastAPI rather than added as a middleware, it spares the hot routes
    FastAPI's outer layers (server errors, telemetry, a body limit of its own: 6 % of the CPU samples at
    C=64 in process), which the front layer does the work of anyway.
    """

    front_layer: Front | None = None  # the front layer itself
    front: ASGIApp | None = (
        None  # what is called: the front layer, behind the CORS layer where origins are set
    )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            scope["app"] = self
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own stack: middlewares, router, dependencies, exception handlers."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, hot_routes: bool = True) -> FastAPI:
    """The application for ``settings`` (default: from the environment); also uvicorn's factory.

    ``hot_routes=False`` leaves every request to FastAPI's routes (the tests compare both doors).
    """
    settings = settings if settings is not None else get_settings()
    app = ServiceApp(
        title="lstm-service",
        description=DESCRIPTION,
        version=__version__,
        docs_url=None,  # served by routes/docs.py with local assets: the page works without internet
        openapi_url=openapi_url(settings),  # None where docs_access guards it or turns it off
        redoc_url=None,
        lifespan=_lifespan,
        default_response_class=OrjsonResponse,
        redirect_slashes=False,  # its redirect would copy the request's Host into Location; a 404 instead
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(LastResort)  # FastAPI's routes: the generic 500 (the front layer's for the hot routes)
    app.front_layer = Front(
        app.framework,
        HotRoutes(HOT_ROUTES) if hot_routes else None,
        timeout_seconds=settings.request_timeout_seconds,
        max_body_bytes=settings.max_body_bytes,
        gate=Gate(settings),  # credentials are checked before a body is read
    )
    app.front = with_cors(app.front_layer, settings)  # off unless LSTM_SERVICE_CORS_ORIGINS names origins
    # With an API key configured, the inference and model routes need it (and say so in the OpenAPI).
    guarded: dict[str, Any] = {}
    if settings.api_key is not None:
        guarded = {"dependencies": [Depends(require_api_key)], "responses": error_responses(401)}
    for module in (tokenize, embed, hidden_states, explain, models):
        app.include_router(module.router, **guarded)
    for module in (health, inspector):
        app.include_router(module.router)
    include_operator_routes(app, settings)  # /metrics, /docs, /openapi.json as the operator allows
    # Without a token the admin routes answer 404 and are left out of the OpenAPI document.
    app.include_router(admin.router, include_in_schema=settings.admin_token is not None)
    app.include_router(rollout.router, include_in_schema=settings.admin_token is not None)
    # Open Inference Protocol v2 and text-embeddings-inference's routes (service/api/oip, routes/tei.py).
    app.include_router(oip.router, **guarded)
    app.include_router(tei.router, **guarded)
    app.include_router(oip.health_router)
    app.include_router(oip.repository_router)
    include_learning(app, guarded)  # feedback, live quality, the labelling queue and page (docs/learning.md)
    for route in HOT_ROUTES:  # the FastAPI twins: the OpenAPI document, and hot_routes=False
        guard = guarded if route.guarded else {}
        twin = documented_twin(route, guard.get("dependencies", ()), guard.get("responses"))
        app.router.routes.append(twin)
    document_bodies(app)
    return app
