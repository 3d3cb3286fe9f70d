"""CPU time per request of the service's ASGI app, driven in process: no HTTP server, no socket.

Steady on a busy machine where requests per second are not: the figure is the process's CPU seconds
(``time.process_time``: every thread, onnxruntime's included) divided by the requests answered. It covers
the app's middleware, the hot route, parsing, tokenizing, batching, the model call and the answer; the HTTP
server's own share (uvicorn's protocol, about 0.08 ms per request on one core) is not in it.

    python -m bench.inprocess --model review-sentiment-zh --concurrency 64 --requests 6000

Prints one JSON object: CPU ms per request, the wall time, and the batch sizes the batcher formed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.texts import latest_bundle, sample_texts

REPO = Path(__file__).resolve().parent.parent


async def _call(app: Any, body: bytes, path: str = "/classify") -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "app": app,
        "state": {},
    }
    await app(scope, receive, send)
    return status


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    )
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return task, inbox


async def drive(app: Any, bodies: list[bytes], concurrency: int, requests: int) -> dict[str, Any]:
    """Answer ``requests`` requests, ``concurrency`` at a time; CPU and wall seconds of the whole run."""
    task, inbox = await _lifespan(app)
    for body in bodies[:50]:  # warm up: sessions, arenas, caches
        await _call(app, body)
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def client(offset: int) -> None:
        for index in counter:
            status = await _call(app, bodies[(index + offset) % len(bodies)])
            statuses[status] = statuses.get(status, 0) + 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await inbox.put({"type": "lifespan.shutdown"})
    await task
    return {
        "requests": requests,
        "concurrency": concurrency,
        "cpu_ms_per_request": 1000 * cpu / requests,
        "wall_s": wall,
        "statuses": statuses,
    }


def _batch_sizes() -> dict[str, float]:
    from prometheus_client import REGISTRY

    sizes: dict[str, float] = {}
    for family in REGISTRY.collect():
        if family.name == "lstm_service_batch_size":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    key = sample.labels["le"]
                    sizes[key] = sizes.get(key, 0.0) + sample.value
                elif sample.name.endswith("_count") or sample.name.endswith("_sum"):
                    key = sample.name.rsplit("_", 1)[1]
                    sizes[key] = sizes.get(key, 0.0) + sample.value
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--model", default="review-sentiment-zh")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--bodies", type=Path, help="request bodies, one a line (default: the test texts)")
    parser.add_argument("--no-hot-routes", action="store_true", help="leave /classify to FastAPI's route")
    parser.add_argument("--log-level", default="warning", help="the service's log level (info: access log)")
    args = parser.parse_args(argv)

    import logging.config

    from service.api.app import create_app
    from service.observability.logs import logging_config
    from service.settings import Settings

    logging.config.dictConfig(logging_config(args.log_level))
    if args.bodies is not None:
        bodies = args.bodies.read_bytes().splitlines()
    else:
        bodies = sample_texts(latest_bundle(args.model_store, args.model), args.texts).request_bodies()
    settings = Settings(model_store=args.model_store, workers=1)  # type: ignore[call-arg]
    app = create_app(settings, hot_routes=not args.no_hot_routes)
    result = asyncio.run(drive(app, bodies, args.concurrency, args.requests))
    result["model"] = args.model
    result["batch_size"] = _batch_sizes()
    json.dump(result, __import__("sys").stdout)
    print()


if __name__ == "__main__":
    main()
