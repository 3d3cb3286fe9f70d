"""Triton's model repository extension, mapped onto the ``/admin`` load and unload operations.

The routes need the admin token and do not exist without one, like ``/admin``: the same dependency guards
them. ``load`` and ``unload`` are answered by the ``/admin`` routes themselves (:class:`AdminAnswer` hands
the request to them with an empty body), so they do exactly what ``/admin`` does and answer what it
answers: a load loads the highest version in the store (Triton's config and file overrides are refused).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Path
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from service.api.common import error_responses
from service.api.deps import RegistryDep
from service.api.oip.schemas import RepositoryModel
from service.api.responses import OrjsonResponse
from service.api.security import require_admin
from service.bundle import NAME_PATTERN, list_models
from service.engine.registry import Registry
from service.errors import InvalidRequest

router = APIRouter(tags=["open inference protocol"], dependencies=[Depends(require_admin)])
ModelName = Annotated[str, Path(pattern=NAME_PATTERN.pattern, description="Model name.")]  # as /admin
OptionalBody = Annotated[dict[str, Any] | None, Body(description="Optional; Triton's clients send one.")]


@router.post("/v2/repository/index", response_model=list[RepositoryModel], responses=error_responses(401))
async def repository_index(registry: RegistryDep, request: OptionalBody = None) -> Response:
    """Every model of the store with its state (READY, LOADING, UNAVAILABLE) and the reason."""
    only_ready = bool(request and request.get("ready") is True)
    return OrjsonResponse(index(registry, only_ready))


def index(registry: Registry, only_ready: bool) -> list[dict[str, str]]:
    """The index entries (``name``, ``version`` when loaded, ``state``, ``reason``), sorted by name; the
    gRPC ``RepositoryIndex`` answers the same."""
    statuses = registry.statuses()
    entries = []
    for name in sorted(set(list_models(registry.store)) | set(statuses)):
        status = statuses.get(name)
        if status is None:
            entry = {"name": name, "state": "UNAVAILABLE", "reason": "unloaded"}
        else:
            state = {"ready": "READY", "loading": "LOADING"}.get(status.state.value, "UNAVAILABLE")
            entry = {"name": name, "state": state, "reason": status.reason or ""}
            if status.version is not None:
                entry["version"] = str(status.version)
        if not only_ready or entry["state"] == "READY":
            entries.append(entry)
    return entries


class AdminAnswer(Response):
    """The answer of the ``/admin`` route at ``path`` to this request (same headers, no body)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = {
            key: value for key, value in scope.items() if key not in ("route", "endpoint", "path_params")
        }
        inner.update(path=self.path, raw_path=quote(self.path).encode())

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        await scope["app"].router(inner, no_body, send)


@router.post("/v2/repository/models/{name}/load", responses=error_responses(401, 404, 422))
async def repository_load(name: ModelName, request: OptionalBody = None) -> Response:
    """POST /admin/models/{name}/load: the highest version of the store, verified before it serves."""
    parameters = (request or {}).get("parameters") or {}
    if not isinstance(parameters, dict) or parameters:
        raise InvalidRequest("load parameters (a config or files to override the bundle) are not supported")
    return AdminAnswer(f"/admin/models/{name}/load")


@router.post("/v2/repository/models/{name}/unload", responses=error_responses(401, 404, 422))
async def repository_unload(name: ModelName, request: OptionalBody = None) -> Response:
    """POST /admin/models/{name}/unload (``unload_dependents`` has nothing to act on: no model has any)."""
    return AdminAnswer(f"/admin/models/{name}/unload")
