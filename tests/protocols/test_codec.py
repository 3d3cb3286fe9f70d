"""The binary tensor framing against the real client's own encoder and decoder (``tritonclient.utils``)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tritonclient.http import InferInput, InferRequestedOutput
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from service.api.oip import codec
from service.errors import InvalidRequest

TEXTS = ["goal for the team", "", "汉字 and ünïcödé", "x" * 300]


def _client_body(*inputs: InferInput, outputs: list[InferRequestedOutput] | None = None) -> tuple[bytes, int]:
    body, json_size = _get_inference_request(list(inputs), "id-1", outputs, 0, False, False, 0, None, None)
    return body, json_size


def test_bytes_elements_read_what_tritonclient_writes() -> None:
    array = np.array([text.encode() for text in TEXTS], dtype=np.object_)
    raw = serialize_byte_tensor(array).item()  # one bytes object, as InferInput sends it
    assert codec.deserialize_bytes("TEXT", memoryview(raw), len(TEXTS)) == [text.encode() for text in TEXTS]


def test_tritonclient_reads_the_bytes_elements_we_write() -> None:
    items = [text.encode() for text in TEXTS]
    decoded = deserialize_bytes_tensor(codec.serialize_bytes(items))
    assert decoded.tolist() == items


def test_a_whole_tritonclient_request_splits_into_header_and_inputs() -> None:
    text = InferInput("TEXT", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_))
    ids = InferInput("INPUT_IDS", [2, 3], "INT64")
    ids.set_data_from_numpy(np.arange(6, dtype=np.int64).reshape(2, 3))
    body, json_size = _client_body(text, ids)
    header, binary = codec.split_body(body, str(json_size))
    assert header["id"] == "id-1" and header["parameters"] == {"binary_data_output": True}
    sizes = [tensor["parameters"]["binary_data_size"] for tensor in header["inputs"]]
    text_chunk, ids_chunk = codec.split_binary(sizes, binary)
    assert text_chunk is not None and ids_chunk is not None
    assert codec.decode_binary("TEXT", "BYTES", len(TEXTS), text_chunk) == [t.encode() for t in TEXTS]
    assert codec.decode_binary("INPUT_IDS", "INT64", 6, ids_chunk).tolist() == list(range(6))


def test_json_data_may_be_flat_or_nested_row_major() -> None:
    assert codec.decode_json("X", "INT64", 4, [[1, 2], [3, 4]], 2).tolist() == [1, 2, 3, 4]
    assert codec.decode_json("X", "INT64", 4, [1, 2, 3, 4], 2).tolist() == [1, 2, 3, 4]
    assert codec.decode_json("T", "BYTES", 2, [["a"], ["b"]], 2) == [b"a", b"b"]


def test_an_answer_with_binary_outputs_carries_the_json_length() -> None:
    body, length = codec.encode_answer({"outputs": []}, [b"\x01\x02"])
    assert length is not None and body[:length] == b'{"outputs":[]}' and body[length:] == b"\x01\x02"
    assert codec.encode_answer({"outputs": []}, []) == (b'{"outputs":[]}', None)


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b'{"inputs": []}', "-1", "non-negative integer"),
        (b'{"inputs": []}', "ten", "non-negative integer"),
        (b'{"inputs": []}', "1e3", "non-negative integer"),
        (b'{"inputs": []}', "99", "only 14 bytes"),
        (b'{"inputs": []}', "0", "empty"),
        (b"\xff\xfe", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"", None, "empty"),
    ],
)
def test_malformed_framing_is_refused(body: bytes, header_length: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        codec.split_body(body, header_length)


def test_binary_sizes_must_add_up_to_what_follows_the_header() -> None:
    with pytest.raises(InvalidRequest, match="declare 10 bytes"):
        codec.split_binary([4, 6], memoryview(b"\x00" * 9))
    with pytest.raises(InvalidRequest, match="declare 0 bytes"):
        codec.split_binary([None], memoryview(b"\x00"))


@pytest.mark.parametrize(
    ("raw", "count", "message"),
    [
        (struct.pack("<I", 5) + b"abc", 1, "declares 5 bytes but only 3 remain"),
        (struct.pack("<I", 0xFFFFFFFF), 1, "declares 4294967295 bytes"),
        (b"\x01\x00", 1, "no 4-byte length"),
        (struct.pack("<I", 1) + b"a" + b"extra", 1, "5 bytes left after"),
        (struct.pack("<I", 1) + b"a", 2, "element 1 has no 4-byte length"),
    ],
)
def test_bytes_elements_that_run_past_the_end_are_refused(raw: bytes, count: int, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        codec.deserialize_bytes("TEXT", memoryview(raw), count)


def test_numbers_must_fill_their_binary_chunk_exactly() -> None:
    with pytest.raises(InvalidRequest, match="7 bytes of binary data, but 1 INT64 elements take 8"):
        codec.decode_binary("INPUT_IDS", "INT64", 1, memoryview(b"\x00" * 7))


@pytest.mark.parametrize(
    ("shape", "message"),
    [([-1], "negative dimension"), ([2**40, 2**40], "at most 100"), ([1] * 9, "9 dimensions")],
)
def test_shapes_are_bounded_before_anything_is_allocated(shape: list[int], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        codec.element_count("TEXT", shape, 100)


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT64", [1.5], "must be integers"),
        ("INT64", [True], "must be integers"),
        ("INT64", [2**64], "must be integers"),
        ("BYTES", [1], "must be strings"),
        ("FP32", ["1"], "must be numbers"),
        ("INT64", [[1], 2], "mixes arrays"),
        ("INT64", [[[1]]], "nested deeper"),
        ("INT64", [None], "null"),
        ("INT64", {"a": 1}, "JSON array"),
        ("INT64", [1, 2], "2 elements in data"),
    ],
)
def test_json_data_of_the_wrong_kind_is_refused(datatype: str, data: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        codec.decode_json("X", datatype, 1, data, 1)
