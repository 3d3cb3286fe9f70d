"""The committed ``grpc_predict_v2.proto`` speaks Triton's wire: every message, field number and type it
declares is the one in ``tritonclient.grpc``'s own descriptors, and the committed generated module is what
grpcio-tools makes of the .proto today (a .proto edited without regenerating fails here).

The service's generated module is never imported here: it and tritonclient's register the same
``inference.*`` names, which one process's protobuf pool refuses; the descriptors are compared as data."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from tritonclient.grpc import model_config_pb2, service_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO = "service/api/oip_grpc/grpc_predict_v2.proto"
GENERATED = ROOT / "service/api/oip_grpc/grpc_predict_v2_pb2.py"


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path_factory.mktemp("proto") / "set.pb"
    assert protoc.main(["protoc", f"-I{ROOT}", f"--descriptor_set_out={out}", str(ROOT / PROTO)]) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


def _triton() -> dict[str, descriptor_pb2.DescriptorProto]:
    messages = {}
    for module in (service_pb2, model_config_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        messages.update(_flatten(proto.message_type, ""))
    return messages


def _flatten(messages: Iterable[descriptor_pb2.DescriptorProto], prefix: str) -> dict[str, Any]:
    found = {}
    for message in messages:
        name = f"{prefix}{message.name}"
        found[name] = message
        found.update(_flatten(message.nested_type, f"{name}."))
    return found


def test_every_field_is_triton_s(ours: descriptor_pb2.FileDescriptorProto) -> None:
    theirs = _triton()
    mine = _flatten(ours.message_type, "")
    assert len(mine) > 30
    for name, message in mine.items():
        assert name in theirs, f"{name} is not a message of Triton's protocol"
        fields = {field.number: field for field in theirs[name].field}
        for field in message.field:
            twin = fields.get(field.number)
            assert twin is not None, f"{name}.{field.name}: Triton has no field {field.number}"
            assert (field.name, field.type, field.label, field.type_name) == (
                twin.name, twin.type, twin.label, twin.type_name,
            ), f"{name}.{field.name} differs from Triton's"  # fmt: skip


def test_every_method_is_triton_s(ours: descriptor_pb2.FileDescriptorProto) -> None:
    proto = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(proto)
    theirs = {method.name: method for method in proto.service[0].method}
    (service,) = ours.service
    assert (ours.package, service.name) == ("inference", "GRPCInferenceService")
    names = [method.name for method in service.method]
    assert names[:6] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    for method in service.method:
        twin = theirs[method.name]
        assert (method.input_type, method.output_type) == (twin.input_type, twin.output_type)
        assert not method.client_streaming and not method.server_streaming


def test_the_committed_module_is_generated_from_the_proto(ours: descriptor_pb2.FileDescriptorProto) -> None:
    literal = re.search(r"AddSerializedFile\((b'.*?')\)\n", GENERATED.read_text(), re.S)
    assert literal is not None
    committed = descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(literal.group(1)))
    fresh = descriptor_pb2.FileDescriptorProto()
    fresh.CopyFrom(ours)
    for message in _flatten(fresh.message_type, "").values():
        for field in message.field:
            field.ClearField("json_name")  # protoc adds it to a descriptor set, not to generated code
    assert committed == fresh, f"regenerate with the command at the top of {PROTO}"
