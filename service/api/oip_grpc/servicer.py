"""The RPCs of ``inference.GRPCInferenceService``, each the twin of an HTTP ``/v2`` route.

Health and server metadata are open, like ``/v2/health/*``; the model calls need the API key when one is
set (``authorization: Bearer <key>`` or ``x-api-key`` metadata); ``RepositoryIndex`` needs the admin
token, like ``/v2/repository/index``. Answers are built from the same dictionaries as the HTTP routes'
(:mod:`service.api.oip.signature`, :mod:`service.api.oip.statistics`), so both wires say the same.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from service.api.deps import Services
from service.api.native import admin
from service.api.oip import repository, signature, statistics, tensors
from service.api.oip.routes import EXTENSIONS, SERVER_NAME, SERVER_VERSION
from service.api.oip_grpc import grpc_predict_v2_pb2 as pb
from service.api.oip_grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from service.api.oip_grpc import wire
from service.api.oip_grpc.status import answered, check_api_key, check_token
from service.api.validation import path_version_or_alias
from service.bundle import NAME_PATTERN
from service.engine.registry import ModelState
from service.engine.runtime import ModelRuntime
from service.errors import DeadlineExceeded, ErrorType, InvalidRequest, NotFound, ServiceError
from service.lifecycle import is_draining
from service.observability.context import DEADLINE

Context: TypeAlias = grpc.aio.ServicerContext


def _version_or_alias(text: str) -> int | str | None:
    """An empty version is the one serving; otherwise a decimal, as in the HTTP paths, or an alias of the
    model's rollout."""
    return None if text == "" else path_version_or_alias(text)


def _model_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(f"model_name {name[:80]!r} is not a model name ({NAME_PATTERN.pattern})")
    return name


class BundleRefused(ServiceError):
    error_type = ErrorType.invalid_bundle  # FAILED_PRECONDITION: the version serving stays


def _parsed(document: Any, message: Message) -> Any:
    return json_format.ParseDict(document, message)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, services: Services) -> None:
        self.engine = services.engine
        self.settings = services.settings
        self.coordinator = services.coordinator

    async def _model(self, context: Context, name: str, version: str) -> ModelRuntime:
        check_api_key(context, self.settings.api_keys())
        return await self.engine.model(name, _version_or_alias(version))

    # -- server and health ------------------------------------------------------------------------------

    @answered
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @answered
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.engine.registry.ready and not is_draining())

    @answered
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    # -- models -----------------------------------------------------------------------------------------

    @answered
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        check_api_key(context, self.settings.api_keys())
        registry = self.engine.registry
        status = registry.status(request.name)  # NOT_FOUND for an unknown model
        try:
            registry.get(
                request.name, self.engine.router.number(request.name, _version_or_alias(request.version))
            )
        except ServiceError as error:
            if error.error_type is ErrorType.not_found and status.state is ModelState.ready:
                raise  # a version that is not loaded
            return pb.ModelReadyResponse(ready=False)  # loading, or failed
        return pb.ModelReadyResponse(ready=True)

    @answered
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        runtime = await self._model(context, request.name, request.version)
        document = signature.model_metadata(runtime, [runtime.version])
        return _parsed(document, pb.ModelMetadataResponse())

    @answered
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> pb.ModelConfigResponse:
        runtime = await self._model(context, request.name, request.version)
        document = signature.model_config(runtime, self.settings.max_texts, runtime.version)
        return pb.ModelConfigResponse(config=_parsed(document, pb.ModelConfig()))

    @answered
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        check_api_key(context, self.settings.api_keys())
        registry = self.engine.registry
        if request.name:
            number = self.engine.router.number(request.name, _version_or_alias(request.version))
            runtimes = [registry.get(request.name, number)]
        else:
            runtimes = []
            for name in registry.names:
                try:
                    runtimes.append(registry.get(name))
                except ServiceError:  # failed or loading: nothing computed
                    continue
        stats = [statistics.model_stat(runtime, self.engine.statistics) for runtime in runtimes]
        return _parsed({"model_stats": stats}, pb.ModelStatisticsResponse())

    @answered
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        check_token(context, self.settings.admin_token)
        entries = repository.index(self.engine.registry, request.ready)
        return _parsed({"models": entries}, pb.RepositoryIndexResponse())

    @answered
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        check_token(context, self.settings.admin_token)
        name = _model_name(request.model_name)
        if request.parameters:
            raise InvalidRequest("load parameters (a config or files to override the bundle): not supported")
        registry = self.engine.registry
        action = {"op": "load", "name": name, "version": None, "pin": False}
        outcome, action_id = await asyncio.to_thread(
            self.coordinator.run, action, lambda: registry.reload(name, None, pin=False)
        )
        await self.coordinator.reach(action_id)  # every worker applied it
        if not outcome.loaded:
            refusal = admin.refusal(name, outcome, registry)
            raise NotFound(refusal) if outcome.missing else BundleRefused(refusal)
        return pb.RepositoryModelLoadResponse()

    @answered
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        check_token(context, self.settings.admin_token)
        name = _model_name(request.model_name)
        registry = self.engine.registry
        registry.status(name)  # NOT_FOUND for an unknown model, before anything is logged
        action = {"op": "unload", "name": name}
        _, action_id = await asyncio.to_thread(self.coordinator.run, action, lambda: registry.unload(name))
        await self.coordinator.reach(action_id)
        return pb.RepositoryModelUnloadResponse()

    # -- inference --------------------------------------------------------------------------------------

    @answered
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        runtime = await self._model(context, request.model_name, request.model_version)
        decoded = wire.decode(request, runtime, self.settings)
        # The request's deadline: the service's, or the caller's gRPC deadline when that comes first.
        seconds = self.settings.request_timeout_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            seconds = min(seconds, remaining)
        token = DEADLINE.set(time.monotonic() + seconds)
        try:
            run = tensors.run(
                self.engine, runtime, decoded.tensors, decoded.shapes, decoded.wanted, decoded.truncate
            )
            outputs = await asyncio.wait_for(run, seconds)
        except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11
            raise DeadlineExceeded(f"no answer within {seconds:.1f} s (the request's deadline)") from None
        finally:
            DEADLINE.reset(token)
        try:  # hidden states are built within the vector budget; the reservation lasts until encoded
            return wire.encode(request, runtime, decoded.wanted, tensors.by_name(outputs))
        finally:
            outputs.release()
