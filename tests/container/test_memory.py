"""Memory stays bounded on the vector routes, in the real image under a hard memory limit.

The container runs with ``--memory 256m --cpus 1`` (its defaults otherwise); 8 clients send the largest
requests the settings allow to /hidden-states and /embed for 60 s (``MEMORY_TEST_SECONDS`` to change it):
as many texts as ``max_vector_texts``, each ``max_text_chars`` long and longer than the model's
``max_length`` in tokens. Without a bound the kernel killed the container within about 15 s. Every answer
must be 200, 429 (the per-worker vector budget is spent: retry) or 413; the container is never killed and
is still healthy afterwards. The cgroup's peak memory goes to the summary.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from support.containers import Running

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

MEMORY_LIMIT = "256m"
CLIENTS = 8
SECONDS = float(os.environ.get("MEMORY_TEST_SECONDS", "60"))
MODEL = "news-topic"  # the default model with the longest inputs (600 word tokens) and 2 x 128 states
TEXTS, TEXT_CHARS = 16, 20_000  # the image's max_vector_texts and max_text_chars (the settings' defaults)


def largest_request(route: str) -> bytes:
    text = ("The striker scored twice as the home side won the cup final. " * 400)[:TEXT_CHARS]
    return json.dumps({"model": MODEL, "texts": [text] * TEXTS}).encode()


def post(port: int, route: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After", "") + " " + error.read()[:200].decode()


def cgroup_memory(running: Running, name: str) -> int | None:
    for path in (f"/sys/fs/cgroup/memory.{name}", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        result = running.exec("cat", path)
        if result.returncode == 0 and result.stdout.strip().isdigit():
            return int(result.stdout.strip())
    return None


@pytest.fixture(scope="module")
def limited(run_container: Callable[..., Running]) -> Iterator[Running]:
    yield run_container("--memory", MEMORY_LIMIT, "--memory-swap", MEMORY_LIMIT, "--cpus", "1")


def test_vector_routes_stay_within_the_memory_limit(
    limited: Running, container_report: dict[str, str]
) -> None:
    bodies = {route: largest_request(route) for route in ("/hidden-states", "/embed")}
    statuses: Counter[tuple[str, int]] = Counter()
    refusals: list[str] = []
    failures: list[str] = []
    deadline = time.monotonic() + SECONDS
    lock = threading.Lock()

    def client(index: int) -> None:
        routes = ["/hidden-states", "/embed"] if index % 2 else ["/embed", "/hidden-states"]
        sent = 0
        while time.monotonic() < deadline:
            route = routes[sent % 2]
            sent += 1
            try:
                status, detail = post(limited.port, route, bodies[route])
            except OSError as error:  # reset, refused: the server died or dropped the connection
                with lock:
                    failures.append(f"{route}: {error!r}")
                return
            with lock:
                statuses[route, status] += 1
                if status == 429:
                    refusals.append(detail)
            if status == 429:
                time.sleep(float(detail.split()[0] or 1) / 4)  # the Retry-After, shortened to press harder

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 180)

    state = limited.state()
    peak = cgroup_memory(limited, "peak")
    summary = ", ".join(f"{route} {status}: {count}" for (route, status), count in sorted(statuses.items()))
    container_report["memory, 8 clients x 60 s at 256m"] = (
        f"{summary}; cgroup peak {peak / 2**20:.0f} MiB" if peak else summary
    )
    assert not state.get("OOMKilled") and state.get("Running"), f"container state: {state}"
    assert not failures, f"connections failed: {failures[:5]}; logs:\n{limited.logs()[-3000:]}"
    assert {status for _, status in statuses} <= {200, 429, 413}, summary
    for route in bodies:  # the bound must not starve a route: each answers in full at times
        assert statuses[route, 200] > 0, summary
    assert all(detail.split()[0].isdigit() for detail in refusals), "429 without Retry-After"
    assert limited.healthy()
