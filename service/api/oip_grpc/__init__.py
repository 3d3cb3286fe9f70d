"""The Open Inference Protocol v2 over gRPC (``inference.GRPCInferenceService``), beside the HTTP routes.

A thin adapter like :mod:`service.api.oip`, which it shares its tensor checks and its engine call with
(:mod:`service.api.oip.tensors`): the same request is refused with the same message and answered with the
same numbers over both wires. Started by the app's lifespan when ``LSTM_SERVICE_GRPC_PORT`` is set, in the
same process and event loop as uvicorn (each worker with ``--workers N``; the port is shared).

- ``grpc_predict_v2.proto``           the service and its messages (Triton's names and field numbers)
- ``grpc_predict_v2_pb2*.py``          generated from it with grpcio-tools (command in the .proto)
- :mod:`service.api.oip_grpc.wire`     ModelInfer's tensors: protobuf in (raw or typed), protobuf out
- :mod:`service.api.oip_grpc.status`   the error vocabulary as gRPC status codes, and the API key
- :mod:`service.api.oip_grpc.servicer` the RPCs
- :mod:`service.api.oip_grpc.server`   the grpc.aio server with the health service and reflection
- :mod:`service.api.oip_grpc.launch`   what the lifespan calls (imports grpc only when gRPC is on)
"""
