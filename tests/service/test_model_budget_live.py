"""LSTM_SERVICE_MAX_LOADED_MODELS on a real server: 50 models in a store, a budget of 10, 20 clients
spread over all 50 for 12 s. Every request is answered 200, /models never shows more than 10 loaded, the
server's memory stays near what it was with the first 10 loaded at start, and /metrics counts the lazy
loads and the evictions the traffic caused.

The 50 models are copies of the tiny fixture model, each written with ``write_bundle`` under its own name;
one worker, so that /models and the process's memory describe the whole server. Measured on 2 shared
cores: about 2,000 answers in 12 s, about 1,000 lazy loads and as many evictions, 10 loaded at most, RSS
121 MiB after start and 141 MiB at its peak; the test takes about 15 s. The same traffic without
eviction (a bug put in by hand) had all 50 loaded and failed the budget check.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from support.apps import parse_metrics
from support.live_server import LiveServer
from support.stores import STORE

from service.bundle import load_bundle, write_bundle

MODELS = 50
BUDGET = 10
CLIENTS = 20
SECONDS = 12.0
# A tiny model's session, tokenizer and batcher take well under a MiB; 40 loads past the first 10 without
# eviction would still show, and the allocator's noise stays far below this.
RSS_GROWTH_LIMIT_MIB = 60

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def fifty_models(tmp_path: Path) -> Path:
    original = load_bundle(STORE / "tiny-en" / "1")
    store = tmp_path / "store"
    for index in range(MODELS):
        write_bundle(
            store,
            f"customer-{index:02d}",
            original.model_path,
            original.tokenizer,
            original.labels,
            original.manifest,
            1,
        )
    return store


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _loaded(server: LiveServer) -> list[str]:
    reply = server.call("GET", "/models")
    assert reply.status == 200, reply.body
    return [model["name"] for model in reply.body["models"] if model["state"] == "ready"]


def test_fifty_models_under_a_budget_of_ten_all_answer(fifty_models: Path, tmp_path: Path) -> None:
    names = [f"customer-{index:02d}" for index in range(MODELS)]
    server = LiveServer.start(
        fifty_models,
        tmp_path / "server.log",
        ["--workers", "1", "--default-model", names[0]],
        env={"LSTM_SERVICE_MAX_LOADED_MODELS": str(BUDGET)},
    )
    statuses: Counter[int | str] = Counter()
    wrong_model: list[str] = []
    asked: set[str] = set()
    most_loaded: list[int] = []
    lock = threading.Lock()
    try:
        loaded_at_start = _loaded(server)
        for name in loaded_at_start:  # memory with the budget full and used, the reference
            assert server.call("POST", "/classify", {"model": name, "text": "the cup match"}).status == 200
        rss_full = _rss_mib(server.process.pid)
        deadline = time.monotonic() + SECONDS

        def client(number: int) -> None:
            rng = random.Random(number)
            while time.monotonic() < deadline:
                model = rng.choice(names)
                try:
                    reply = server.call("POST", "/classify", {"model": model, "text": "the cup match"})
                except Exception as error:  # accepted, then no answer
                    with lock:
                        statuses[type(error).__name__] += 1
                    continue
                with lock:
                    asked.add(model)
                    statuses[reply.status] += 1
                    if reply.status == 200 and reply.body["model"] != model:
                        wrong_model.append(f"{model} answered by {reply.body['model']}")

        threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        rss_peak = rss_full
        while any(thread.is_alive() for thread in threads):
            most_loaded.append(len(_loaded(server)))
            rss_peak = max(rss_peak, _rss_mib(server.process.pid))
            time.sleep(0.25)
        for thread in threads:
            thread.join()
        loaded_after = _loaded(server)
        metrics = parse_metrics(server.call("GET", "/metrics").body)
        ready = server.call("GET", "/readyz")
    finally:
        server.kill()

    answered = sum(count for status, count in statuses.items() if status == 200)
    summary = (
        f"{dict(statuses)}; most loaded {max(most_loaded)}; RSS {rss_full:.0f} MiB with {BUDGET} loaded, "
        f"peak {rss_peak:.0f} MiB"
    )
    print(summary)
    assert sorted(loaded_at_start) == names[:BUDGET], loaded_at_start  # the default, then by name
    assert set(statuses) == {200}, summary  # no failed request, whatever had to load first
    assert answered >= CLIENTS * 5, summary
    assert wrong_model == []
    assert max(most_loaded) <= BUDGET and len(loaded_after) <= BUDGET, summary
    assert rss_peak - rss_full < RSS_GROWTH_LIMIT_MIB, summary
    lazy_loads = sum(
        value
        for (name, labels), value in metrics.items()
        if name == "lstm_service_model_loads_total"
        and ("kind", "lazy") in labels
        and ("outcome", "loaded") in labels
    )
    evictions = sum(
        value for (name, _), value in metrics.items() if name == "lstm_service_model_evictions_total"
    )
    # each model asked for but not loaded at start loaded lazily at least once; each load past the budget
    # evicted one: what was loaded, less what still is
    assert len(asked) > MODELS - 5, sorted(set(names) - asked)
    assert lazy_loads >= len(asked - set(loaded_at_start)), (lazy_loads, summary)
    loaded_total = len(loaded_at_start) + lazy_loads
    assert evictions >= loaded_total - len(loaded_after), (evictions, lazy_loads, summary)
    print(f"{lazy_loads:.0f} lazy loads, {evictions:.0f} evictions")
    assert ready.status == 200, ready.body
