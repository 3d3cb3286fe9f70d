"""Triton's model repository extension, mapped onto the ``/admin`` load and unload operations.

The routes need the admin token and do not exist without one, like ``/admin``: the same dependency guards
them. A load loads the highest version in the store (Triton's config and file overrides are refused), and
with ``--workers N`` a call reaches the one worker that answers it, as ``/admin`` calls do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from starlette.responses import Response

from service.api.deps import RegistryDep
from service.api.oip.schemas import RepositoryModel
from service.api.responses import OrjsonResponse
from service.api.routes import admin
from service.api.schemas import error_responses
from service.api.security import require_admin
from service.bundle import list_models
from service.errors import InvalidRequest

router = APIRouter(tags=["open inference protocol"], dependencies=[Depends(require_admin)])
ModelName = Annotated[str, Path(description="Model name.")]
OptionalBody = Annotated[dict[str, Any] | None, Body(description="Optional; Triton's clients send one.")]


@router.post("/v2/repository/index", response_model=list[RepositoryModel], responses=error_responses(401))
async def repository_index(registry: RegistryDep, request: OptionalBody = None) -> Response:
    """Every model of the store with its state (READY, LOADING, UNAVAILABLE) and the reason."""
    only_ready = bool(request and request.get("ready") is True)
    statuses = registry.statuses()
    index = []
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
            index.append(entry)
    return OrjsonResponse(index)


@router.post("/v2/repository/models/{name}/load", responses=error_responses(401, 404, 422))
async def repository_load(name: ModelName, registry: RegistryDep, request: OptionalBody = None) -> Response:
    """Load (or reload) the highest version of the model from the store, verified before it serves."""
    parameters = (request or {}).get("parameters") or {}
    if not isinstance(parameters, dict) or parameters:
        raise InvalidRequest("load parameters (a config or files to override the bundle) are not supported")
    return await admin.load_model(name, registry, None)


@router.post("/v2/repository/models/{name}/unload", responses=error_responses(401, 404, 422))
async def repository_unload(name: ModelName, registry: RegistryDep, request: OptionalBody = None) -> Response:
    """Stop serving the model (``unload_dependents`` has nothing to act on: models have no dependents)."""
    return await admin.unload_model(name, registry)
