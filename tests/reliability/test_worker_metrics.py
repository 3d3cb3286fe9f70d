"""With ``--workers 2`` a scrape of ``/metrics`` describes the whole server: the requests both workers
answered add up, whichever worker answers the scrape, and each live worker is listed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from support.live_server import LiveServer

pytestmark = pytest.mark.e2e

_CLASSIFIED = re.compile(
    r'^lstm_service_requests_total\{method="POST",route="/classify",status="200"\} (\S+)$', re.M
)
_BATCHED = re.compile(r'^lstm_service_batch_size_count\{model="tiny-en",version="1"\} (\S+)$', re.M)
_WORKER = re.compile(r'^lstm_service_worker_info\{pid="(\d+)"\} 1\.0$', re.M)


def _value(pattern: re.Pattern[str], scrape: str) -> float:
    found = pattern.search(scrape)
    return float(found.group(1)) if found else 0.0


def test_a_scrape_adds_up_the_requests_of_every_worker(tiny_store: Path, tmp_path: Path) -> None:
    server = LiveServer.start(tiny_store, tmp_path / "server.log", ["--workers", "2"])
    try:
        requests, workers = 0, set()
        deadline = time.monotonic() + 30
        # A new connection each time, until both workers have answered (the kernel picks the worker that
        # accepts; generated request ids start with a per-process prefix) and at least 40 requests.
        while len(workers) < 2 or requests < 40:
            assert time.monotonic() < deadline, "every connection went to one worker: nothing to add up"
            reply = server.call("POST", "/classify", {"text": "good", "model": "tiny-en"})
            assert reply.status == 200
            workers.add(reply.headers["x-request-id"][:16])
            requests += 1
        # A request is counted just after its answer is sent: the last one may not be counted yet.
        settled = time.monotonic() + 10
        while _value(_CLASSIFIED, server.call("GET", "/metrics").body) != requests:
            assert time.monotonic() < settled, "the requests were never all counted"
            time.sleep(0.05)
        scrapes = [server.call("GET", "/metrics").body for _ in range(10)]
    finally:
        server.kill()

    for scrape in scrapes:  # every scrape, whichever worker answered it, counts every request
        assert _value(_CLASSIFIED, scrape) == requests
        assert _value(_BATCHED, scrape) == requests  # one request at a time: one batch each
        assert len(set(_WORKER.findall(scrape))) == 2
