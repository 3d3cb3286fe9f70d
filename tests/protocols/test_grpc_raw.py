"""gRPC below ``tritonclient``'s helpers, against the real server process: typed tensor contents, the
request parameters, the standard health service and server reflection (with grpcio-health-checking's and
grpcio-reflection's own clients), and mangled protobufs that must each get a status code, never a crash or
a hang."""

from __future__ import annotations

import random
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from protocol_support import GRPC_KEY, GrpcServer
from tritonclient.grpc import service_pb2, service_pb2_grpc

pytestmark = pytest.mark.e2e
SERVICE = "inference.GRPCInferenceService"
TEXTS = [b"the striker scored a goal for the team", b"bake the bread with cheese"]


@pytest.fixture(scope="module")
def channel(grpc_server: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(grpc_server.target) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> service_pb2_grpc.GRPCInferenceServiceStub:
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _request(texts: list[bytes], typed: bool, **fields: object) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="tiny-en", **fields)
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
    if typed:
        tensor.contents.bytes_contents.extend(texts)
    else:
        request.raw_input_contents.append(b"".join(len(text).to_bytes(4, "little") + text for text in texts))
    request.outputs.add(name="PROBS")
    return request


def _probabilities(response: service_pb2.ModelInferResponse) -> np.ndarray:
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("PROBS", "FP32", [2, 3])
    return np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 3)


def _refusal(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, request: service_pb2.ModelInferRequest
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request, metadata=GRPC_KEY, timeout=30)
    return error.value


def test_typed_contents_answer_as_raw_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    raw = stub.ModelInfer(_request(TEXTS, typed=False), metadata=GRPC_KEY, timeout=30)
    typed = stub.ModelInfer(_request(TEXTS, typed=True), metadata=GRPC_KEY, timeout=30)
    np.testing.assert_array_equal(_probabilities(typed), _probabilities(raw))


def test_contents_are_refused_when_they_do_not_fit(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    both = _request(TEXTS, typed=True)
    both.raw_input_contents.append(b"")
    error = _refusal(stub, both)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "input TEXT: send contents or raw_input_contents, not both"

    wrong_field = _request([], typed=True)
    wrong_field.inputs[0].shape[:] = [1]
    wrong_field.inputs[0].contents.int64_contents.append(7)
    error = _refusal(stub, wrong_field)
    assert error.details() == "input TEXT: BYTES elements go in contents.bytes_contents"

    too_few = _request(TEXTS[:1], typed=True)
    too_few.inputs[0].shape[:] = [2]
    assert "1 elements in contents.bytes_contents, but its shape holds 2" in _refusal(stub, too_few).details()

    no_truncation = _request([b"goal " * 200, b"goal"], typed=True)
    no_truncation.parameters["truncate"].bool_param = False
    error = _refusal(stub, no_truncation)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "TEXT.0" in error.details()
    no_truncation.parameters["truncate"].string_param = "no"
    assert "truncate must be a bool" in _refusal(stub, no_truncation).details()


def test_the_health_service_says_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_service(channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    asks = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
    ]
    listed, described = list(reflection.ServerReflectionInfo(iter(asks), timeout=30))
    names = {service.name for service in listed.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    files = [descriptor_pb2.FileDescriptorProto.FromString(data)
             for data in described.file_descriptor_response.file_descriptor_proto]  # fmt: skip
    methods = {method.name for file in files for service in file.service for method in service.method}
    assert {"ModelInfer", "ModelMetadata", "ServerReady"} <= methods


def _mangled(valid: bytes, rng: random.Random) -> bytes:
    data = bytearray(valid)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(4)
        position = rng.randrange(len(data) + 1)
        if kind == 0 and data:  # flip a byte
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:  # cut
            del data[position:]
        elif kind == 2:  # insert junk
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        else:  # repeat a slice (fields given twice, lengths that lie)
            data[position:position] = data[max(0, position - 12) : position]
    return bytes(data)


def test_mangled_protobufs_get_status_codes_and_the_server_keeps_serving(
    channel: grpc.Channel, stub: service_pb2_grpc.GRPCInferenceServiceStub, grpc_server: GrpcServer
) -> None:
    infer = channel.unary_unary(f"/{SERVICE}/ModelInfer")  # bytes in, bytes out
    ids = service_pb2.ModelInferRequest(model_name="tiny-en")
    ids.inputs.add(name="INPUT_IDS", datatype="INT64", shape=[1, 3]).contents.int64_contents.extend([1, 2, 3])
    ids.inputs.add(name="LENGTHS", datatype="INT64", shape=[1]).contents.int64_contents.append(3)
    valid = [
        _request(TEXTS, typed=False).SerializeToString(),
        _request(TEXTS, typed=True).SerializeToString(),
        ids.SerializeToString(),
    ]
    expected = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
    rng = random.Random(23)
    seen = set()
    for attempt in range(300):
        body = _mangled(valid[attempt % len(valid)], rng)
        try:
            infer(body, metadata=GRPC_KEY, timeout=30)
            seen.add(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            assert error.code() in expected, f"{error.code()}: {error.details()} for {body!r}"
            assert error.details(), f"no message for {body!r}"
            seen.add(error.code())
    assert grpc.StatusCode.INVALID_ARGUMENT in seen  # the mangling reached the checks
    assert "gRPC ModelInfer failed" not in grpc_server.live.log_text()  # no error was the server's
    assert _probabilities(
        stub.ModelInfer(_request(TEXTS, typed=True), metadata=GRPC_KEY, timeout=30)
    ).shape == (2, 3)
