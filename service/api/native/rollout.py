"""The rollout's admin routes (bearer token): aliases, canary weights, the shadow, promote, roll back,
compare. Thin: each checks its body, makes the change with :mod:`service.rollout.changes` (the same code as
the ``lstm-service`` commands) in a worker thread, applies it here and, with ``--workers N``, in every
worker before answering (``workers`` says in how many); other replicas that share the store follow the
rollout file within ``LSTM_SERVICE_ROLLOUT_POLL_SECONDS``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.common import error_responses
from service.api.deps import Services, ServicesDep
from service.api.native.schemas import (
    AliasRequest,
    PromoteRequest,
    RollbackRequest,
    RolloutResponse,
    ShadowRequest,
)
from service.api.responses import OrjsonResponse
from service.api.security import require_admin
from service.bundle import NAME_PATTERN
from service.errors import NotFound
from service.rollout import changes
from service.rollout.changes import Actor, Outcome
from service.rollout.state import ALIAS_PATTERN

router = APIRouter(prefix="/admin/models/{name}", tags=["rollout"], dependencies=[Depends(require_admin)])
ModelNamePath = Annotated[str, Path(pattern=NAME_PATTERN.pattern, description="Model name.")]
AliasPath = Annotated[str, Path(pattern=ALIAS_PATTERN.pattern, description="Alias name.")]
_ERRORS = error_responses(401, 404, 409, 422, 503)


def _actor(http: Request, body: Any = None) -> Actor:
    """Who made the change (the body's ``by``, else the admin API and the caller's address) and why."""
    client = http.client.host if http.client is not None else "unknown"
    by, why = (body.by, body.why) if body is not None else (None, None)
    return Actor(by or f"admin API ({client})", why)


async def _applied(services: Services, name: str, outcome: Outcome) -> Response:
    """Apply the new rollout here and in every worker, then answer with it."""
    coordinator = services.coordinator
    router = services.engine.router
    _, action_id = await run_in_threadpool(
        coordinator.run, {"op": "rollout", "name": name}, lambda: router.refresh([name], force=True)
    )
    reach = (await coordinator.reach(action_id)).to_dict()
    return OrjsonResponse(
        {
            "model": name,
            "message": outcome.message,
            "rollout": services.engine.router.describe(name),
            "workers": reach,
        }
    )


def _served(services: Services, name: str) -> None:
    services.registry.status(name)  # 404 for a model the server does not serve


@router.get("/rollout", response_model=RolloutResponse, responses=error_responses(401, 404))
async def get_rollout(name: ModelNamePath, services: ServicesDep) -> Response:
    """The model's aliases, weights, shadow and history, and what this worker could not load."""
    _served(services, name)
    return OrjsonResponse({"model": name, "rollout": services.engine.router.describe(name)})


@router.put(
    "/aliases/{alias}",
    response_model=RolloutResponse,
    responses=_ERRORS,
    openapi_extra=request_body(AliasRequest),
)
async def put_alias(
    name: ModelNamePath,
    alias: AliasPath,
    services: ServicesDep,
    http: Request,
    body: Annotated[AliasRequest, json_body(AliasRequest)],
) -> Response:
    """Point an alias at a version, with a share of the unpinned traffic (a canary) or none."""
    _served(services, name)
    settings = services.settings
    outcome = await run_in_threadpool(
        changes.set_alias, settings.model_store, name, alias, body.version, _actor(http, body),
        weight=body.weight, public_key=settings.public_key(),
    )  # fmt: skip
    return await _applied(services, name, outcome)


@router.delete("/aliases/{alias}", response_model=RolloutResponse, responses=_ERRORS)
async def delete_alias(
    name: ModelNamePath, alias: AliasPath, services: ServicesDep, http: Request
) -> Response:
    """Remove an alias (and its weight)."""
    _served(services, name)
    actor = _actor(http)
    outcome = await run_in_threadpool(changes.remove_alias, services.settings.model_store, name, alias, actor)
    return await _applied(services, name, outcome)


@router.put(
    "/shadow", response_model=RolloutResponse, responses=_ERRORS, openapi_extra=request_body(ShadowRequest)
)
async def put_shadow(
    name: ModelNamePath,
    services: ServicesDep,
    http: Request,
    body: Annotated[ShadowRequest, json_body(ShadowRequest)],
) -> Response:
    """Let a version shadow the model: a share of its answered requests is classified by it too."""
    _served(services, name)
    settings = services.settings
    outcome = await run_in_threadpool(
        changes.set_shadow, settings.model_store, name, body.version, body.percent, _actor(http, body),
        settings.public_key(),
    )  # fmt: skip
    return await _applied(services, name, outcome)


@router.delete("/shadow", response_model=RolloutResponse, responses=_ERRORS)
async def delete_shadow(name: ModelNamePath, services: ServicesDep, http: Request) -> Response:
    """Stop the shadow runs."""
    _served(services, name)
    actor = _actor(http)
    outcome = await run_in_threadpool(changes.remove_shadow, services.settings.model_store, name, actor)
    return await _applied(services, name, outcome)


@router.post(
    "/promote", response_model=RolloutResponse, responses=_ERRORS, openapi_extra=request_body(PromoteRequest)
)
async def promote(
    name: ModelNamePath,
    services: ServicesDep,
    http: Request,
    body: Annotated[PromoteRequest, json_body(PromoteRequest)],
) -> Response:
    """Make a version the alias (stable: the one answering unpinned traffic), unless the logged feedback
    shows it significantly less accurate than the one it replaces (409; ``force`` overrides)."""
    _served(services, name)
    settings = services.settings
    log = services.engine.predictions
    store = settings.model_store
    version = await run_in_threadpool(changes.resolve, store, name, body.version)
    outcome = await run_in_threadpool(
        changes.promote, store, name, version, _actor(http, body),
        alias=body.alias, force=body.force, serving=services.registry.serving_versions.get(name),
        log=log.store if log is not None else None, public_key=settings.public_key(),
    )  # fmt: skip
    return await _applied(services, name, outcome)


@router.post(
    "/rollback",
    response_model=RolloutResponse,
    responses=_ERRORS,
    openapi_extra=request_body(RollbackRequest),
)
async def rollback(
    name: ModelNamePath,
    services: ServicesDep,
    http: Request,
    body: Annotated[RollbackRequest | None, json_body(RollbackRequest, optional=True)],
) -> Response:
    """Undo the alias's last change (stable by default)."""
    _served(services, name)
    body = body or RollbackRequest()
    outcome = await run_in_threadpool(
        changes.rollback, services.settings.model_store, name, _actor(http, body), alias=body.alias
    )
    return await _applied(services, name, outcome)


@router.get("/compare", responses=error_responses(401, 404, 422, 503))
async def compare(
    name: ModelNamePath,
    services: ServicesDep,
    a: Annotated[str, Query(max_length=64, description="A version, by number or alias.")],
    b: Annotated[str, Query(max_length=64, description="Another version, by number or alias.")],
    window_hours: Annotated[float, Query(gt=0, le=24 * 366, description="Answers of the last hours.")] = 168,
) -> Response:
    """Two versions on the prediction log: agreement, the confusion between their labels, live accuracy
    on feedback (Wilson intervals, McNemar's test on the texts both answered), latency p50/p99."""
    _served(services, name)
    log = services.engine.predictions
    if log is None or log.store is None:
        raise NotFound(
            "no SQL prediction log on this server: set LSTM_SERVICE_PREDICTION_LOG (docs/learning.md)"
        )
    store = services.settings.model_store
    first = await run_in_threadpool(changes.resolve, store, name, a)
    second = await run_in_threadpool(changes.resolve, store, name, b)
    await run_in_threadpool(log.flush, 2.0)
    comparison = await run_in_threadpool(changes.compare, log.store, name, first, second, window_hours)
    return OrjsonResponse(comparison.to_dict())
