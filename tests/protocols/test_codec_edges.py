"""The Open Inference Protocol codec at its boundaries, as mutation testing found them untested: identity
encodings, a body that inflates to exactly the limit, a header that is the whole body, three binary inputs,
eight dimensions, the integer ranges, unsigned and float data, and the messages whole."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from service.api.oip import codec
from service.errors import InvalidRequest


def _refused(message: str):
    return pytest.raises(InvalidRequest, match=f"^{re.escape(message)}$")


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity ", "IDENTITY"])
def test_identity_encodings_leave_the_body_as_it_is(encoding: str | None) -> None:
    assert codec.decompress(b'{"inputs": []}', encoding, 100) == b'{"inputs": []}'


def test_an_unsupported_encoding_is_named_cut_to_20_characters() -> None:
    with _refused(f"Content-Encoding {'x' * 20!r} is not supported (gzip, deflate)"):
        codec.decompress(b"{}", "x" * 30, 100)


def test_a_body_that_inflates_to_exactly_the_limit_is_accepted() -> None:
    assert codec.decompress(gzip.compress(b"a" * 1000), "gzip", 1000) == b"a" * 1000


def test_a_header_length_of_the_whole_body_leaves_no_binary_part() -> None:
    body = b'{"inputs": []}'
    header, binary = codec.split_body(body, str(len(body)))
    assert header == {"inputs": []} and len(binary) == 0


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"", None, "the inference request is empty (a JSON object was expected)"),
        (b"{nope", None, "the inference request header is not valid JSON"),
        (b"[1, 2]", None, "the inference request header must be a JSON object"),
        (
            b"{}",
            "x" * 50,
            f"Inference-Header-Content-Length must be a non-negative integer, got {'x' * 40!r}",
        ),
    ],
)
def test_framing_refusals_say_exactly_what_is_wrong(body: bytes, header_length: str | None, message: str):
    with _refused(message):
        codec.split_body(body, header_length)


def test_three_binary_inputs_are_cut_at_their_own_offsets() -> None:
    binary = memoryview(b"a" * 2 + b"b" * 3 + b"c" * 4)
    chunks = codec.split_binary([2, None, 3, 4], binary)
    assert [None if chunk is None else bytes(chunk) for chunk in chunks] == [b"aa", None, b"bbb", b"cccc"]


def test_eight_dimensions_are_allowed_and_nine_are_not() -> None:
    assert codec.element_count("X", [1] * 8, 10) == 1
    with _refused("input X: 9 dimensions (at most 8)"):
        codec.element_count("X", [1] * 9, 10)


def test_binary_bytes_errors_name_the_input() -> None:
    with _refused("input TEXT: element 0 has no 4-byte length (the data ends first)"):
        codec.decode_binary("TEXT", "BYTES", 1, memoryview(b"\x01"))


def test_json_errors_name_the_input() -> None:
    with _refused("input IDS: data must be a JSON array"):
        codec.decode_json("IDS", "INT64", 1, 5, 1)


def test_int64_takes_its_whole_range() -> None:
    low, high = -(2**63), 2**63 - 1
    decoded = codec.decode_json("IDS", "INT64", 2, [low, high], 1)
    assert decoded.dtype == np.int64 and decoded.tolist() == [low, high]


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT8", [200], "input X: an element does not fit in INT8"),
        ("UINT8", [-1], "input X: an element does not fit in UINT8"),
        ("UINT8", [1.5], "input X: UINT8 elements must be integers"),
        ("BOOL", [1], "input X: BOOL elements must be true or false"),
        ("FP32", ["1"], "input X: FP32 elements must be numbers"),
    ],
)
def test_json_elements_of_the_wrong_kind_or_range_are_refused(datatype: str, data: list, message: str):
    with _refused(message):
        codec.decode_json("X", datatype, 1, data, 1)


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [("FP32", [1.5, 2], np.float32), ("BOOL", [True, False], np.bool_), ("UINT8", [0, 255], np.uint8)],
)
def test_json_numbers_decode_to_their_datatype(datatype: str, data: list, dtype: type) -> None:
    decoded = codec.decode_json("X", datatype, 2, data, 1)
    assert decoded.dtype == dtype and decoded.tolist() == data
