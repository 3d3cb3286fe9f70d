"""The binary tensor extension of the Open Inference Protocol (Triton's ``binary_tensor_data``).

A request body is a JSON header, optionally followed by the raw bytes of some inputs: the
``Inference-Header-Content-Length`` request header says where the JSON ends, and each binary input says how
many bytes it takes (``parameters.binary_data_size``), in the order the inputs are listed. Numbers are
little-endian and row-major, without padding; a BYTES element is a 4-byte little-endian unsigned length
followed by that many bytes. Answers use the same framing for the outputs asked for as binary.

Every size is checked before anything is read or allocated; anything malformed raises
:class:`service.errors.InvalidRequest` (422) with a message that says which tensor is wrong.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from service.api.responses import OPTIONS
from service.errors import InvalidRequest, PayloadTooLarge

HEADER_LENGTH = "Inference-Header-Content-Length"
# The numeric datatypes of the protocol and their little-endian numpy types; BYTES is handled apart.
NUMPY_TYPES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = frozenset({*NUMPY_TYPES, "BYTES"})
MAX_DIMENSIONS = 8  # deeper shapes are refused before their size is computed
_LENGTH = struct.Struct("<I")
_INT64_RANGE = (-(2**63), 2**63 - 1)

Tensor = np.ndarray | list[bytes]  # numbers: a flat array; BYTES: the elements as bytes


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before ``Content-Encoding`` (gzip or deflate, as ``tritonclient`` compresses it),
    inflated to at most ``limit`` bytes (413 beyond: a small compressed body can inflate without bound)."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    kind = encoding.strip().lower()
    if kind not in ("gzip", "deflate"):
        raise InvalidRequest(f"Content-Encoding {kind[:20]!r} is not supported (gzip, deflate)")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if kind == "gzip" else zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise InvalidRequest(f"the body is not valid {kind} data") from None
    if len(inflated) > limit:
        raise PayloadTooLarge(f"the {kind} body inflates past {limit} bytes (LSTM_SERVICE_MAX_BODY_BYTES)")
    if not inflater.eof or inflater.unused_data:
        raise InvalidRequest(f"the body is not one complete {kind} stream")
    return inflated


def split_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    """The parsed JSON header and the binary part that follows it (empty without the header)."""
    binary = memoryview(b"")
    header: bytes | memoryview = body
    if header_length is not None:
        text = header_length.strip()
        if not (text.isascii() and text.isdigit()):
            raise InvalidRequest(f"{HEADER_LENGTH} must be a non-negative integer, got {text[:40]!r}")
        length = int(text)
        if length > len(body):
            raise InvalidRequest(f"{HEADER_LENGTH} is {length} but the body has only {len(body)} bytes")
        view = memoryview(body)
        header, binary = view[:length], view[length:]
    if len(header) == 0:
        raise InvalidRequest("the inference request is empty (a JSON object was expected)")
    try:
        parsed = orjson.loads(header)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the inference request header is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("the inference request header must be a JSON object")
    return parsed, binary


def split_binary(sizes: Sequence[int | None], binary: memoryview) -> list[memoryview | None]:
    """Cut the binary part into one chunk per input that declared ``binary_data_size`` (None elsewhere)."""
    declared = sum(size for size in sizes if size is not None)
    if declared != len(binary):
        raise InvalidRequest(
            f"the inputs declare {declared} bytes of binary data (binary_data_size) "
            f"but {len(binary)} bytes follow the JSON header"
        )
    chunks: list[memoryview | None] = []
    offset = 0
    for size in sizes:
        if size is None:
            chunks.append(None)
            continue
        chunks.append(binary[offset : offset + size])
        offset += size
    return chunks


def element_count(name: str, shape: Sequence[int], limit: int) -> int:
    """Elements of a tensor of this shape; 422 for negative dimensions or more than ``limit`` elements."""
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidRequest(f"input {name}: {len(shape)} dimensions (at most {MAX_DIMENSIONS})")
    if any(dimension < 0 for dimension in shape):
        raise InvalidRequest(f"input {name}: shape {list(shape)} has a negative dimension")
    count = math.prod(shape)  # Python integers: no overflow, whatever the client claims
    if count > limit:
        raise InvalidRequest(f"input {name}: shape {list(shape)} holds {count} elements (at most {limit})")
    return count


def decode_binary(name: str, datatype: str, count: int, chunk: memoryview) -> Tensor:
    """A binary input: ``count`` elements of ``datatype`` that must fill ``chunk`` exactly."""
    if datatype == "BYTES":
        return deserialize_bytes(name, chunk, count)
    dtype = np.dtype(NUMPY_TYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise InvalidRequest(
            f"input {name}: {len(chunk)} bytes of binary data, but {count} {datatype} elements "
            f"take {count * dtype.itemsize}"
        )
    return np.frombuffer(chunk, dtype=dtype)


def deserialize_bytes(name: str, chunk: memoryview, count: int) -> list[bytes]:
    """``count`` BYTES elements (4-byte little-endian length, then the bytes) filling ``chunk`` exactly."""
    items = []
    offset, end = 0, len(chunk)
    for index in range(count):
        if offset + 4 > end:
            raise InvalidRequest(f"input {name}: element {index} has no 4-byte length (the data ends first)")
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if size > end - offset:
            raise InvalidRequest(
                f"input {name}: element {index} declares {size} bytes but only {end - offset} remain"
            )
        items.append(bytes(chunk[offset : offset + size]))
        offset += size
    if offset != end:
        raise InvalidRequest(f"input {name}: {end - offset} bytes left after the last of {count} elements")
    return items


def decode_json(name: str, datatype: str, count: int, data: Any, depth: int) -> Tensor:
    """An input sent as JSON ``data`` (flat or nested row-major, at most ``depth`` levels deep)."""
    flat = _flatten(name, data, depth)
    if len(flat) != count:
        raise InvalidRequest(f"input {name}: {len(flat)} elements in data, but its shape holds {count}")
    if datatype == "BYTES":
        if not all(isinstance(item, str) for item in flat):
            raise InvalidRequest(f"input {name}: BYTES elements sent as JSON must be strings")
        return [item.encode("utf-8", "surrogatepass") for item in flat]
    if datatype == "BOOL":
        if not all(isinstance(item, bool) for item in flat):
            raise InvalidRequest(f"input {name}: BOOL elements must be true or false")
    elif datatype.startswith(("INT", "UINT")):
        low, high = _INT64_RANGE
        if not all(type(item) is int and low <= item <= high for item in flat):
            raise InvalidRequest(f"input {name}: {datatype} elements must be integers")
    elif not all(type(item) in (int, float) for item in flat):
        raise InvalidRequest(f"input {name}: {datatype} elements must be numbers")
    try:
        return np.array(flat, dtype=np.dtype(NUMPY_TYPES[datatype]))
    except OverflowError:
        raise InvalidRequest(f"input {name}: an element does not fit in {datatype}") from None


def _flatten(name: str, data: Any, depth: int) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidRequest(f"input {name}: data must be a JSON array")
    flat: list[Any] = []
    level = data
    for _ in range(depth):
        if not any(isinstance(item, list) for item in level):
            break
        if not all(isinstance(item, list) for item in level):
            raise InvalidRequest(f"input {name}: data mixes arrays and elements at one level")
        level = [item for row in level for item in row]
    if any(isinstance(item, (list, dict)) or item is None for item in level):
        raise InvalidRequest(f"input {name}: data is nested deeper than its shape, or holds objects or null")
    flat.extend(level)
    return flat


def serialize_bytes(items: Sequence[bytes]) -> bytes:
    """BYTES elements in the binary framing: each one's 4-byte little-endian length, then its bytes."""
    parts = []
    for item in items:
        parts.append(_LENGTH.pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def encode_answer(header: dict[str, Any], chunks: Sequence[bytes]) -> tuple[bytes, int | None]:
    """The answer body and, when binary outputs follow the JSON, the JSON's length (for the header)."""
    text = orjson.dumps(header, option=OPTIONS)
    if not chunks:
        return text, None
    return b"".join([text, *chunks]), len(text)
