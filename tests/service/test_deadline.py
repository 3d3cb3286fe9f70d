"""Model calls that outlive the request's deadline: the client gets 504, the texts not yet run are dropped,
and the service keeps answering.

The calls are made long for real: ``tiny-zh``'s tokenizer keeps 20,000 characters instead of 64 (the golden
examples are short, so the bundle still verifies): a text fills a batch, and 32 of them keep the tiny model
busy for most of a second here. The deadline is placed half-way through those calls, measured first on an
app with the default deadline (and moved if a loaded machine ran faster or slower the second time)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apps import parse_metrics, series
from support.stores import rewrite_manifest

from service.settings import Settings

pytestmark = pytest.mark.anyio

LONG_TEXTS = {"texts": ["很好的东西真的喜欢" * 2222] * 32, "model": "tiny-zh"}  # 19,998 characters each
BIG_BODIES = 8 * 1024 * 1024
RUNS = series("lstm_service_batch_run_seconds_count", model="tiny-zh", version="1")


@pytest.fixture
def long_text_store(store_copy: Path) -> Path:
    tokenizer_path = store_copy / "tiny-zh" / "1" / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    tokenizer["max_length"] = 20_000
    tokenizer_path.write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    rewrite_manifest(store_copy / "tiny-zh" / "1", refresh_checksums=True)
    return store_copy


@dataclass
class LateCall:
    response: httpx.Response
    calls_before_the_answer: float  # model calls finished when the answer came
    calls_in_all: float  # model calls finished once the service answered a request after it
    still_serving: int


async def _call_with_deadline(start_app: Callable[..., Any], settings: Settings, deadline: float) -> LateCall:
    async with start_app(settings.model_copy(update={"request_timeout_seconds": deadline})) as client:
        before = parse_metrics((await client.get("/metrics")).text).get(RUNS, 0)
        late = await client.post("/classify", json=LONG_TEXTS)
        answered = parse_metrics((await client.get("/metrics")).text).get(RUNS, 0)
        still_serving = await client.post("/classify", json={"text": "很好", "model": "tiny-zh"})
        after = parse_metrics((await client.get("/metrics")).text).get(RUNS, 0)
    return LateCall(late, answered - before, after - before - 1, still_serving.status_code)


async def test_model_calls_past_the_deadline_get_504_and_the_rest_are_dropped(
    long_text_store: Path, start_app: Callable[..., Any]
) -> None:
    settings = Settings(model_store=long_text_store, max_body_bytes=BIG_BODIES, workers=1)
    async with start_app(settings) as client:
        started = time.perf_counter()
        timed = await client.post("/classify", json=LONG_TEXTS)
        total = time.perf_counter() - started
    assert timed.status_code == 200
    model_seconds = float(timed.headers["x-inference-time"]) / 1000
    assert model_seconds > 0.05, "the long texts should keep the model busy for a while"

    # Half-way through the model calls as measured; a loaded machine can run faster or slower the next
    # time, so a deadline that fell before the first call or after the last is moved and tried again.
    deadline = total - model_seconds / 2
    for _ in range(6):
        late = await _call_with_deadline(start_app, settings, deadline)
        if late.response.status_code == 200:  # finished before the deadline: come earlier
            deadline *= 0.7
        elif late.calls_before_the_answer == 0:  # expired before a model call ended: come later
            deadline *= 1.4
        else:
            break

    assert (late.response.status_code, late.response.json()["error_type"]) == (504, "timeout")
    assert late.calls_before_the_answer > 0  # model calls ran, and the deadline passed while they did
    # 20,000 tokens fill a batch (max_batch_tokens): one model call per text. The calls for the texts the
    # deadline had not reached never ran: the service spends no more CPU on an answer nobody waits for.
    assert late.calls_in_all < len(LONG_TEXTS["texts"])
    assert late.still_serving == 200
