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

import argparse
import asyncio
import json
import sys

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="file with one /classify JSON body per line")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds driven but not measured")
    args = parser.parse_args(argv)
    with open(args.requests, "rb") as handle:
        bodies = [line.rstrip(b"\n") for line in handle if line.strip()]
    loadgen._use_fast_event_loop()
    requests = encode_requests(args.host, bodies)
    tally = asyncio.run(
        loadgen.drive(args.host, args.port, requests, args.concurrency, args.duration, args.warmup)
    )
    json.dump(loadgen.summarize(tally, args.duration, args.texts_per_request), sys.stdout)


if __name__ == "__main__":
    main()
