"""GET /livez, /readyz and /health."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import RegistryDep
from service.api.errors import error_body
from service.api.responses import OrjsonResponse
from service.api.schemas import LivenessResponse, NotReadyResponse, ReadinessResponse
from service.engine.registry import ModelState, Registry
from service.errors import STATUS_CODES, ErrorType
from service.lifecycle import is_draining

router = APIRouter(tags=["health"])
_NOT_READY = {
    503: {"model": NotReadyResponse, "description": "A model is not loaded and verified, or it drains"},
}


@router.get("/livez", response_model=LivenessResponse)
async def livez() -> Response:
    """The process answers (no model check: a failed model must not get the process restarted)."""
    return OrjsonResponse({"status": "alive"})


def _readiness(registry: Registry) -> Response:
    statuses = registry.statuses()
    models = {
        name: {"state": status.state.value, "version": status.version, "reason": status.reason}
        for name, status in statuses.items()
    }
    if is_draining():  # SIGTERM: load balancers must stop sending, though requests are still answered
        message = "draining: the server is shutting down"
        body = {"status": "draining", "models": models, **error_body(ErrorType.unavailable, message)}
        return OrjsonResponse(body, STATUS_CODES[ErrorType.unavailable])
    if registry.ready:
        return OrjsonResponse({"status": "ready", "models": models})
    not_ready = [
        f"{name} ({status.reason or status.state.value})"
        for name, status in statuses.items()
        if status.state is not ModelState.ready
    ]
    message = "not ready: " + ("; ".join(not_ready) if not_ready else "no model in the store")
    body = {"status": "not_ready", "models": models, **error_body(ErrorType.unavailable, message)}
    return OrjsonResponse(body, STATUS_CODES[ErrorType.unavailable])


@router.get("/readyz", response_model=ReadinessResponse, responses=_NOT_READY)
async def readyz(registry: RegistryDep) -> Response:
    """200 when every model is loaded and verified; 503 with the reason per model, or while draining."""
    return _readiness(registry)


@router.get("/health", response_model=ReadinessResponse, responses=_NOT_READY)
async def health(registry: RegistryDep) -> Response:
    """Same as /readyz, for tools that expect this name."""
    return _readiness(registry)
