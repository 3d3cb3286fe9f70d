"""POST /admin/models/{name}/load and /unload: hot reload, pinning and unloading (bearer token).

A load opens and verifies the version *beside* the one serving and swaps it in only if it passes; a
refused version leaves the old one serving and says why (here, and on ``/models/{name}``). Requests in
flight finish on the runtime they started with. With ``--workers N`` the worker that gets the call logs the
change for the others (:mod:`service.engine.coordination`) and answers once every worker applied it;
``workers`` in the answer says in how many it took effect.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.common import error_responses
from service.api.deps import RegistryDep
from service.api.errors import error_body
from service.api.native.schemas import AdminModelResponse, LoadFailedResponse, LoadModelRequest
from service.api.responses import OrjsonResponse
from service.api.security import require_admin
from service.bundle import NAME_PATTERN, list_models
from service.engine.coordination import Coordinator
from service.engine.registry import LoadOutcome, ModelStatus, Registry
from service.errors import STATUS_CODES, ErrorType

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
ModelNamePath = Annotated[str, Path(pattern=NAME_PATTERN.pattern, description="Model name.")]
_LOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **error_responses(401, 404),
    422: {"model": LoadFailedResponse, "description": "Invalid request, or the bundle was refused"},
}


def _model_body(status: ModelStatus) -> dict[str, Any]:
    return {
        "model": status.name,
        "state": status.state.value,
        "version": status.version,
        "pinned": status.pinned,
        "reason": status.reason,
        "load_seconds": status.load_seconds,
    }


@router.post(
    "/models/{name}/load",
    response_model=AdminModelResponse,
    responses=_LOAD_RESPONSES,
    openapi_extra=request_body(LoadModelRequest, optional=True),
)
async def load_model(
    name: ModelNamePath,
    registry: RegistryDep,
    http: Request,
    request: Annotated[LoadModelRequest | None, json_body(LoadModelRequest, optional=True)],
) -> Response:
    """Load and verify a version beside the one serving, then swap it in (a given version is pinned), in
    every worker of the server before the answer."""
    version = request.version if request is not None else None
    coordinator: Coordinator = http.app.state.services.coordinator
    action = {"op": "load", "name": name, "version": version, "pin": version is not None}

    def here() -> LoadOutcome:
        return registry.reload(name, version, pin=version is not None)

    outcome, action_id = await run_in_threadpool(coordinator.run, action, here)
    reach = (await coordinator.reach(action_id)).to_dict()
    if outcome.loaded:
        return OrjsonResponse({**_model_body(outcome.status), "workers": reach})
    serving = outcome.status.version if outcome.status.state.value == "ready" else None
    error_type = ErrorType.not_found if outcome.missing else ErrorType.invalid_bundle
    body = {
        **error_body(error_type, refusal(name, outcome, registry)),
        "model": name,
        "version": outcome.version,
        "serving_version": serving,
        "workers": reach,
    }
    return OrjsonResponse(body, STATUS_CODES[error_type])


def refusal(name: str, outcome: LoadOutcome, registry: Registry) -> str:
    """Why a load did not happen (also the gRPC RepositoryModelLoad's message)."""
    if outcome.missing and outcome.version is None:
        return (
            f"model {name} is not in the store (it holds: {', '.join(list_models(registry.store)) or 'none'})"
        )
    version = "" if outcome.version is None else f" version {outcome.version}"
    return f"{name}{version} was not loaded: {outcome.reason}"


@router.post(
    "/models/{name}/unload", response_model=AdminModelResponse, responses=error_responses(401, 404, 422)
)
async def unload_model(name: ModelNamePath, registry: RegistryDep, http: Request) -> Response:
    """Stop serving a model in every worker; it answers 404 until it is loaded again."""
    coordinator: Coordinator = http.app.state.services.coordinator
    registry.status(name)  # 404 for an unknown model, before anything is logged
    status, action_id = await run_in_threadpool(
        coordinator.run, {"op": "unload", "name": name}, lambda: registry.unload(name)
    )
    reach = (await coordinator.reach(action_id)).to_dict()
    # the reason of an earlier refused load belonged to the model that is gone: not repeated here
    body = {**_model_body(status), "state": "unloaded", "pinned": False, "reason": None, "workers": reach}
    return OrjsonResponse(body)
