"""The grpc.aio server: ``GRPCInferenceService``, the standard health service and server reflection.

It runs on the app's event loop (started and stopped by the lifespan), so its calls reach the same engine,
micro-batcher and statistics as the HTTP routes. The health service answers SERVING for the whole server
(``""``) and for ``inference.GRPCInferenceService`` while the server is ready (as ``/readyz``), and
NOT_SERVING while models load, after one failed, and from the start of a drain; it is open, like ``/livez``
and ``/readyz``. With ``--workers N`` each worker binds the same port (SO_REUSEPORT, gRPC's default on
Linux) and the kernel spreads the connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.api.deps import Services
from service.api.oip_grpc import grpc_predict_v2_pb2 as pb
from service.api.oip_grpc.servicer import InferenceServicer
from service.engine.engine import Engine
from service.errors import ErrorType
from service.lifecycle import is_draining

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
_HEALTH_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 5.0  # the lifespan ends after uvicorn drained: calls in flight get this long


def _handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's methods, each parsing its own request: bytes that are not the message end the call
    INVALID_ARGUMENT with a message (grpcio's own parsing would answer INTERNAL, as for a server bug)."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), getattr(pb, method.input_type.name), method.input_type),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _parsing(rpc: Any, request_class: Any, descriptor: Any) -> Any:
    async def behavior(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = request_class.FromString(raw)
        except DecodeError:
            context.set_trailing_metadata((("error-type", ErrorType.validation.value),))
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {descriptor.full_name} message"
            )
        return await rpc(request, context)

    return behavior


class GrpcServer:
    """``await GrpcServer.start(services)`` binds and serves; ``await server.stop()`` ends it."""

    def __init__(self, server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, port: int):
        self.server = server
        self.health = health_servicer
        self.port = port
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, services: Services) -> GrpcServer:
        engine, settings = services.engine, services.settings
        limit = settings.grpc_max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 1),
            ]
        )
        server.add_generic_rpc_handlers((_handlers(InferenceServicer(services)),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = f"{settings.host}:{settings.grpc_port}"
        port = server.add_insecure_port(address)  # raises RuntimeError when the port cannot be bound
        await server.start()
        running = cls(server, health_servicer, port)
        await running._set_health(engine)
        running._watcher = asyncio.create_task(running._watch(engine))
        logger.info("gRPC: Open Inference Protocol v2 on %s (health service and reflection)", address)
        return running

    async def _set_health(self, engine: Engine) -> None:
        serving = engine.registry.ready and not is_draining()
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def _watch(self, engine: Engine) -> None:
        while True:
            await asyncio.sleep(_HEALTH_POLL_SECONDS)
            await self._set_health(engine)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(_STOP_GRACE_SECONDS)
