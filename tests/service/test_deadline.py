"""Model calls that outlive the request's deadline: the client gets 504 at the deadline, not when the calls
end; the texts not yet run are dropped, and the service keeps answering.

The calls are made long for real: ``tiny-zh``'s tokenizer keeps 20,000 characters instead of 64 (the golden
examples are short, so the bundle still verifies): a text fills a batch, and 32 of them keep the tiny model
busy for most of a second here. The deadline is placed half-way through those calls, measured first on an
app with the default deadline, so the test holds on a fast or a slow machine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.apps import parse_metrics, series
from support.stores import rewrite_manifest

from service.settings import Settings

pytestmark = pytest.mark.anyio

LONG_TEXTS = {"texts": ["很好的东西真的喜欢" * 2222] * 32, "model": "tiny-zh"}  # 19,998 characters each
BIG_BODIES = 8 * 1024 * 1024


@pytest.fixture
def long_text_store(store_copy: Path) -> Path:
    tokenizer_path = store_copy / "tiny-zh" / "1" / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    tokenizer["max_length"] = 20_000
    tokenizer_path.write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    rewrite_manifest(store_copy / "tiny-zh" / "1", refresh_checksums=True)
    return store_copy


async def test_a_model_call_past_the_deadline_gets_504_at_the_deadline(
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
    deadline = total - model_seconds / 2  # half-way through the model call

    runs = series("lstm_service_batch_run_seconds_count", model="tiny-zh", version="1")
    async with start_app(settings.model_copy(update={"request_timeout_seconds": deadline})) as client:
        before = parse_metrics((await client.get("/metrics")).text).get(runs, 0)
        started = time.perf_counter()
        late = await client.post("/classify", json=LONG_TEXTS)
        answered_after = time.perf_counter() - started
        after_late = parse_metrics((await client.get("/metrics")).text).get(runs, 0)
        still_serving = await client.post("/classify", json={"text": "很好", "model": "tiny-zh"})
        finally_ran = parse_metrics((await client.get("/metrics")).text).get(runs, 0)

    assert (late.status_code, late.json()["error_type"]) == (504, "timeout")
    assert after_late > before  # the model call had started: the deadline passed while it ran
    assert answered_after < total  # the 504 came at the deadline, before the call could have ended
    assert still_serving.status_code == 200
    # 20,000 tokens fill a batch (max_batch_tokens): one model call per text. The calls for the texts the
    # deadline had not reached never ran: the service spends no more CPU on an answer nobody waits for.
    assert finally_ran - before - 1 < len(LONG_TEXTS["texts"])
