"""The benchmark's gRPC row: the same texts as ``/classify``'s rows, as ``tritonclient.grpc`` sends them.

Each ``/classify`` body of the run becomes the ``ModelInferRequest`` that
``tritonclient.grpc.InferenceServerClient.infer`` writes for a BYTES ``TEXT`` input of those texts with
``outputs=[InferRequestedOutput("PROBS")]`` (the texts in ``raw_input_contents``), serialized once. Then
``concurrency`` loops on one grpc.aio channel (HTTP/2 streams, as a gRPC client multiplexes) each send one,
wait for the answer, and send the next: a closed loop like :mod:`bench.loadgen`'s, whose summary it prints
(an OK answer counts as status 200, any other status code as 500). Sending pre-serialized bytes keeps the
client's own cost per request low, as the HTTP rows do.

Run as ``python -m bench.grpc_client --port GRPC_PORT`` with :mod:`bench.loadgen`'s other arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc
import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc._utils import _get_inference_request

from bench import loadgen

ROW_NAME = "service (OIP v2 gRPC)"  # the rows' server column
LOADGEN_MODULE = ("-m", "bench.grpc_client")
GRPC_PORT_VARIABLE = "LSTM_SERVICE_GRPC_PORT"
_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def infer_request(model: str, texts: list[str]) -> bytes:
    """The serialized request tritonclient.grpc sends for these texts."""
    tensor = InferInput("TEXT", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
    outputs = [InferRequestedOutput("PROBS")]
    request = _get_inference_request(model, [tensor], "", "", outputs, 0, False, False, 0, None, None)
    return request.SerializeToString()


def encode_requests(classify_bodies: list[bytes]) -> list[bytes]:
    requests = []
    for raw in classify_bodies:
        payload = json.loads(raw)
        requests.append(
            infer_request(payload["model"], payload["texts"] if "texts" in payload else [payload["text"]])
        )
    return requests


async def _loop(
    call: grpc.aio.UnaryUnaryMultiCallable, requests: list[bytes], offset: int, tally: loadgen.Tally
) -> None:
    index = offset
    while True:
        started = time.perf_counter()
        if started >= tally.window_end:
            return
        try:
            await call(requests[index % len(requests)], timeout=30)
            status = 200
        except grpc.aio.AioRpcError:
            status = 500
        tally.record(started, time.perf_counter(), status)
        index += 1


async def drive(
    host: str, port: int, requests: list[bytes], concurrency: int, duration: float, warmup: float
) -> loadgen.Tally:
    now = time.perf_counter()
    tally = loadgen.Tally(window_start=now + warmup, window_end=now + warmup + duration)
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(f"{host}:{port}", options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        call = channel.unary_unary(_METHOD)  # bytes in, bytes out: the requests are serialized already
        spread = max(1, len(requests) // concurrency)
        await asyncio.gather(*(_loop(call, requests, index * spread, tally) for index in range(concurrency)))
    return tally


def notes(rows: list[dict]) -> list[str]:
    """The gRPC row's texts/s against the HTTP OIP row's and /classify's at the highest concurrency."""
    found = []
    highest = max((row["concurrency"] for row in rows), default=0)
    for row in rows:
        if row["server"] != ROW_NAME or row["concurrency"] != highest:
            continue
        others = {
            r["server"]: r["texts_per_s"]
            for r in rows
            if r["model"] == row["model"] and r["concurrency"] == highest and r["server"] != ROW_NAME
        }
        compared = [
            f"{name} {others[name]:.0f}" for name in ("service (OIP v2)", "service") if others.get(name)
        ]
        found.append(
            f"{row['model']}: OIP v2 gRPC {row['texts_per_s']:.0f} texts/s at concurrency {highest}"
            + (f" (same run: {', '.join(compared)})" if compared else "")
        )
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="the gRPC port")
    parser.add_argument("--requests", required=True, help="file with one /classify body per line")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds driven but not measured")
    args = parser.parse_args(argv)
    with open(args.requests, "rb") as handle:
        requests = encode_requests([line.rstrip(b"\n") for line in handle if line.strip()])
    tally = asyncio.run(drive(args.host, args.port, requests, args.concurrency, args.duration, args.warmup))
    json.dump(loadgen.summarize(tally, args.duration, args.texts_per_request), sys.stdout)


if __name__ == "__main__":
    main()
