"""A closed-loop HTTP/1.1 load generator on raw asyncio protocols (stdlib only).

``concurrency`` keep-alive connections each send a request, wait for the complete response, and send
the next one at once. Requests are pre-encoded bytes and responses are parsed with a few ``bytes.find``
calls inside ``data_received``: no coroutine, no header dict, no JSON per request. That keeps the client
at a few tens of microseconds of CPU per request, so one core drives a trivial FastAPI endpoint several
times faster than the service runs (the benchmark prints that run as its proof).

Run as ``python -m bench.loadgen --port P --concurrency C --duration S --requests FILE`` (FILE: one JSON
body per line); prints one JSON object with the counts and latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_HEADER_END = b"\r\n\r\n"
_GRACE_SECONDS = 30.0  # how long past the window a response may take before it counts as an error


def encode_requests(host: str, path: str, bodies: list[bytes]) -> list[bytes]:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    return [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]


@dataclass
class Tally:
    """What every connection saw in the measured window: every response that *completed* inside it
    counts (also one sent during the warm-up), so a server slower than the window still shows its rate."""

    window_start: float
    window_end: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    answered_ok: int = 0  # 2xx responses over the whole run, warm-up included (to divide by server CPU time)

    def record(self, started: float, finished: float, status: int) -> None:
        self.answered_ok += 200 <= status < 300
        if self.window_start <= finished <= self.window_end:
            self.latencies.append(finished - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection that always has exactly one request in flight."""

    def __init__(
        self, requests: list[bytes], offset: int, tally: Tally, stop_at: float, done: asyncio.Future
    ) -> None:
        self.requests, self.next_index, self.tally, self.stop_at, self.done = (
            requests,
            offset,
            tally,
            stop_at,
            done,
        )
        self.buffer = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        request = self.requests[self.next_index % len(self.requests)]
        self.next_index += 1
        self.started = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        header_end = self.buffer.find(_HEADER_END)
        if header_end < 0:
            return
        body_end = _body_end(self.buffer, header_end)
        if body_end < 0:
            return
        finished = time.perf_counter()
        status = int(self.buffer[9:12])
        self.buffer = self.buffer[body_end:]
        self.tally.record(self.started, finished, status)
        if finished < self.stop_at:
            self._send()
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.stop_at:
            self.tally.connection_errors += 1
        if not self.done.done():
            self.done.set_result(self.next_index)


def _body_end(buffer: bytes, header_end: int) -> int:
    """Where the response that starts ``buffer`` ends, or -1 while it is incomplete. A body comes with
    Content-Length, or chunked (streamed answers), which ends at the empty last chunk."""
    headers = buffer[:header_end].lower()
    start = headers.find(b"\r\ncontent-length:")
    if start >= 0:
        stop = headers.find(b"\r\n", start + 2)
        body_end = header_end + 4 + int(headers[start + 17 : stop if stop >= 0 else header_end])
        return body_end if len(buffer) >= body_end else -1
    if b"\r\ntransfer-encoding: chunked" not in headers:
        raise ValueError("the server answered with neither Content-Length nor a chunked body")
    last_chunk = buffer.find(b"\r\n0\r\n\r\n", header_end + 2)
    return last_chunk + 7 if last_chunk >= 0 else -1


async def _one_connection(
    host: str, port: int, requests: list[bytes], offset: int, tally: Tally, stop_at: float
) -> None:
    """Keep one connection busy until ``stop_at``; reconnect if the server drops it."""
    loop = asyncio.get_running_loop()
    while time.perf_counter() < stop_at:
        done = loop.create_future()
        try:
            protocol = functools.partial(_Connection, requests, offset, tally, stop_at, done)
            await loop.create_connection(protocol, host, port)
            offset = await done
        except OSError:
            tally.connection_errors += 1
            await asyncio.sleep(0.01)


async def drive(
    host: str, port: int, requests: list[bytes], concurrency: int, duration: float, warmup: float
) -> Tally:
    now = time.perf_counter()
    tally = Tally(window_start=now + warmup, window_end=now + warmup + duration)
    spread = max(1, len(requests) // concurrency)  # connections start at different texts
    tasks = [
        asyncio.ensure_future(_one_connection(host, port, requests, index * spread, tally, tally.window_end))
        for index in range(concurrency)
    ]
    _, stuck = await asyncio.wait(tasks, timeout=warmup + duration + _GRACE_SECONDS)
    for task in stuck:  # a server that never answers must not hang the benchmark
        task.cancel()
    tally.connection_errors += len(stuck)
    return tally


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def summarize(tally: Tally, duration: float, texts_per_request: int) -> dict:
    latencies = sorted(tally.latencies)
    ok = sum(count for status, count in tally.statuses.items() if 200 <= status < 300)
    return {
        "requests": len(latencies),
        "answered_ok_total": tally.answered_ok,
        "ok": ok,
        "errors": len(latencies) - ok + tally.connection_errors,
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "requests_per_s": ok / duration,
        "texts_per_s": ok * texts_per_request / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def _use_fast_event_loop() -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional: the client is faster with it, and correct without
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(
    argv: list[str] | None = None,
    encode: Callable[[argparse.Namespace, list[bytes]], list[bytes]] | None = None,
) -> None:
    """Drive a server with the bodies of ``--requests``; ``encode`` turns them into whole HTTP requests
    (default: POSTs of each body to ``--path``; :mod:`bench.oip_client` passes its own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/classify")
    parser.add_argument("--requests", required=True, help="file with one JSON request body per line")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds driven but not measured")
    args = parser.parse_args(argv)
    with open(args.requests, "rb") as handle:
        bodies = [line.rstrip(b"\n") for line in handle if line.strip()]
    _use_fast_event_loop()
    if encode is None:
        requests = encode_requests(args.host, args.path, bodies)
    else:
        requests = encode(args, bodies)
    tally = asyncio.run(drive(args.host, args.port, requests, args.concurrency, args.duration, args.warmup))
    json.dump(summarize(tally, args.duration, args.texts_per_request), sys.stdout)


if __name__ == "__main__":
    main()
