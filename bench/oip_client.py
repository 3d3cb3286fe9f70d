"""The benchmark's Open Inference Protocol row: the same texts as ``/classify``'s rows, sent the way
``tritonclient`` sends them.

Each ``/classify`` body of the run (``{"model", "text"}`` or ``{"model", "texts"}``) becomes the request
``tritonclient.http.InferenceServerClient.infer`` writes for a BYTES ``TEXT`` input of those texts with
``outputs=[InferRequestedOutput("PROBS")]``: a JSON header, the texts in the binary framing, the
``Inference-Header-Content-Length`` header, and PROBS answered as binary FP32. The requests are encoded
once, then driven by :mod:`bench.loadgen`'s closed loop (same client, same cost per request).

Run as ``python -m bench.oip_client`` with :mod:`bench.loadgen`'s arguments (``--requests`` is the same
file of ``/classify`` bodies); prints the same JSON summary.
"""

from __future__ import annotations

import json

import numpy as np
from tritonclient.http import InferInput, InferRequestedOutput
from tritonclient.http._utils import _get_inference_request

from bench import loadgen

ROW_NAME = "service (OIP v2)"  # the rows' server column
LOADGEN_MODULE = ("-m", "bench.oip_client")


def infer_request(texts: list[str]) -> tuple[bytes, int]:
    """The body tritonclient sends for these texts, and its JSON header's length."""
    tensor = InferInput("TEXT", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
    outputs = [InferRequestedOutput("PROBS")]
    body, json_size = _get_inference_request([tensor], "", outputs, 0, False, False, 0, None, None)
    return body, int(json_size)


def encode_requests(host: str, classify_bodies: list[bytes]) -> list[bytes]:
    """Whole HTTP/1.1 requests, one per ``/classify`` body."""
    requests = []
    for raw in classify_bodies:
        payload = json.loads(raw)
        texts = payload["texts"] if "texts" in payload else [payload["text"]]
        body, json_size = infer_request(texts)
        head = (
            f"POST /v2/models/{payload['model']}/infer HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {json_size}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


def notes(rows: list[dict]) -> list[str]:
    """The OIP row's texts/s against /classify's at the highest concurrency, per model (same run)."""
    found = []
    highest = max((row["concurrency"] for row in rows), default=0)
    for row in rows:
        if row["server"] != ROW_NAME or row["concurrency"] != highest:
            continue
        classify = next(
            (
                r
                for r in rows
                if r["server"] == "service" and r["model"] == row["model"] and r["concurrency"] == highest
            ),
            None,
        )
        if classify and classify["texts_per_s"]:
            ratio = row["texts_per_s"] / classify["texts_per_s"]
            found.append(
                f"{row['model']}: OIP v2 binary {row['texts_per_s']:.0f} texts/s vs /classify "
                f"{classify['texts_per_s']:.0f} at concurrency {highest} ({100 * (ratio - 1):+.1f} %)"
            )
    return found


def main(argv: list[str] | None = None) -> None:
    """:func:`bench.loadgen.main` with the /classify bodies sent as tritonclient's binary infer requests."""
    loadgen.main(argv, encode=lambda args, bodies: encode_requests(args.host, bodies))


if __name__ == "__main__":
    main()
