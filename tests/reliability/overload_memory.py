"""Drive a real server past its admission bound for a while and report its memory and its refusals.

    .venv/bin/python tests/reliability/overload_memory.py --model-store <store> [--seconds 60]

Starts ``python -m service serve`` with a small ``--max-queued``, warms it up, reads its RSS, then keeps
``--connections`` keep-alive connections sending /classify requests of ``--texts`` texts back to back (a
429 is answered by the next request at once: no back-off, so the queue stays full). Prints RSS before,
the peak during, and after (under load at the end, and once the load stopped), the answers by status,
and whether any accepted request failed. Exit status 1 if a request failed or got a 5xx other than 503.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the `support` helpers, as under pytest
from support.live_server import LiveServer  # noqa: E402

TEXTS = [
    "the striker scored a late goal for the team",
    "the chef made a tasty soup with bread and cheese",
    "a new laptop chip makes the server network faster",
    "这个手机质量非常好，推荐购买",
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _request_bytes(texts: int, model: str) -> bytes:
    body = json.dumps({"texts": [TEXTS[i % len(TEXTS)] * 2 for i in range(texts)], "model": model}).encode()
    head = (
        f"POST /classify HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, request: bytes, until: float, statuses: Counter[str]) -> None:
    """One keep-alive connection sending ``request`` back to back until ``until``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            statuses[status] += 1
            if b"connection: close" in head.lower():
                break
    except (OSError, asyncio.IncompleteReadError) as error:
        statuses[f"failed: {type(error).__name__}"] += 1
    finally:
        writer.close()


async def _overload(
    port: int, seconds: float, connections: int, request: bytes, pid: int
) -> tuple[Counter[str], list[float]]:
    """Statuses of every answer, and the server's RSS sampled every 10 s (the last one at the end)."""
    statuses: Counter[str] = Counter()
    started = time.monotonic()
    until = started + seconds
    clients = [asyncio.create_task(_client(port, request, until, statuses)) for _ in range(connections)]
    samples, next_sample = [], started + 10.0
    while not all(client.done() for client in clients):
        if time.monotonic() >= next_sample:
            samples.append(rss_mib(pid))
            next_sample += 10.0
        await asyncio.sleep(0.2)
    samples.append(rss_mib(pid))
    await asyncio.gather(*clients)
    return statuses, samples


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-store", type=Path, required=True)
    parser.add_argument("--model", default=None, help="model to classify with (default: the server's)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--texts", type=int, default=8, help="texts per request")
    parser.add_argument("--max-queued", type=int, default=64, help="the server's admission bound (texts)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        flags = ["--max-queued", str(arguments.max_queued), "--log-level", "warning", "--drain-seconds", "0"]
        server = LiveServer.start(arguments.model_store, log, flags)
        try:
            model = arguments.model or server.call("GET", "/models").body["default_model"]
            request = _request_bytes(arguments.texts, model)
            pid = server.process.pid
            asyncio.run(_overload(server.port, 5.0, 4, request, pid))  # warm-up below the bound
            before = rss_mib(pid)
            started = time.monotonic()
            statuses, samples = asyncio.run(
                _overload(server.port, arguments.seconds, arguments.connections, request, pid)
            )
            elapsed = time.monotonic() - started
            time.sleep(2.0)
            after = rss_mib(pid)
            ready = server.call("GET", "/readyz").status
            server.terminate()
            exit_code = server.process.wait(timeout=60)
        finally:
            server.kill()

    answered = sum(count for status, count in statuses.items() if not status.startswith("failed"))
    failed = sum(count for status, count in statuses.items() if status.startswith("failed"))
    server_errors = sum(
        count for status, count in statuses.items() if status.startswith("5") and status != "503"
    )
    print(
        f"overload: {arguments.connections} connections x {arguments.texts} texts/request "
        f"for {elapsed:.0f} s, --max-queued {arguments.max_queued}, model {model}"
    )
    print(f"answers: {answered} ({answered / elapsed:.0f}/s) by status {dict(sorted(statuses.items()))}")
    print(
        f"429 share: {statuses['429'] / max(answered, 1):.1%}; accepted requests that failed: {failed}; "
        f"5xx other than 503: {server_errors}"
    )
    during = ", ".join(f"{sample:.1f}" for sample in samples)
    print(f"server RSS (MiB): before {before:.1f}; every 10 s under overload: {during}")
    print(f"server RSS (MiB): 2 s after the load {after:.1f} (growth {after - before:+.1f})")
    print(f"/readyz after the overload: {ready}; exit status after SIGTERM: {exit_code}")
    return 0 if failed == 0 and server_errors == 0 and exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
