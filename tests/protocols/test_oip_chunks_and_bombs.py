"""Binary chunks longer than their tensor and compressed bombs: refused with a 4xx, and a bomb refused
without inflating it past the body limit."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from service.api.oip import codec
from service.errors import InvalidRequest, PayloadTooLarge

pytestmark = pytest.mark.anyio
INFER = "/v2/models/tiny-en/infer"
LENGTH = "Inference-Header-Content-Length"


def _binary(name: str, shape: list[int], size: int) -> dict[str, Any]:
    return {"name": name, "datatype": "INT64", "shape": shape, "parameters": {"binary_data_size": size}}


async def test_an_over_long_binary_chunk_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    # INPUT_IDS [1, 2] takes 16 bytes; the client sends 24 and declares them, so the framing adds up
    ids = np.array([5, 6, 7], dtype="<i8").tobytes()
    lengths = np.array([2], dtype="<i8").tobytes()
    header = orjson.dumps(
        {"inputs": [_binary("INPUT_IDS", [1, 2], len(ids)), _binary("LENGTHS", [1], len(lengths))]}
    )
    answer = await client.post(INFER, content=header + ids + lengths, headers={LENGTH: str(len(header))})
    assert answer.status_code == 422, answer.text
    assert "24 bytes of binary data, but 2 INT64 elements take 16" in answer.json()["error"]
    well = orjson.dumps({"inputs": [_binary("INPUT_IDS", [1, 2], 16), _binary("LENGTHS", [1], len(lengths))]})
    sent = await client.post(INFER, content=well + ids[:16] + lengths, headers={LENGTH: str(len(well))})
    assert sent.status_code == 200, sent.text


@pytest.mark.parametrize("size", [15, 17, 32])
def test_numbers_chunk_of_any_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(InvalidRequest, match=f"{size} bytes of binary data, but 2 INT64 elements take 16"):
        codec.decode_binary("INPUT_IDS", "INT64", 2, memoryview(b"\x00" * size))


@pytest.mark.parametrize(("kind", "pack"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_a_refused_bomb_is_never_inflated_past_the_limit(kind: str, pack: Any) -> None:
    bomb = pack(b"\x00" * (64 << 20), 9)  # 64 MiB of zeros: about 64 KB on the wire
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match=f"inflates past {limit} bytes"):
            codec.decompress(bomb, kind, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # inflating it whole first peaks at 64 MiB and more; capped, it holds the limit and a little
    assert peak < 4 * limit, f"refusing the bomb peaked at {peak / 2**20:.0f} MiB"
