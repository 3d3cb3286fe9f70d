"""Starting the gRPC server from the app's lifespan, with a clear error when the grpc extra is missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.api.deps import Services
    from service.api.oip_grpc.server import GrpcServer


async def start_grpc(services: Services) -> GrpcServer:
    """Serve gRPC on ``LSTM_SERVICE_GRPC_PORT``; a clear error when the grpc extra is not installed."""
    try:
        from service.api.oip_grpc.server import GrpcServer
    except ImportError as error:
        raise RuntimeError(
            f"LSTM_SERVICE_GRPC_PORT is set but gRPC cannot be served ({error}); install the grpc extra "
            "(pip install 'lstm-service[grpc]', or requirements/serve-grpc.txt) or unset the port"
        ) from None
    return await GrpcServer.start(services)
