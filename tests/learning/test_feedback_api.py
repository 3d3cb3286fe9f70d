"""The prediction log, feedback, live quality and the labelling queue through the real app in process, on
SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apps import metric_value, running_app

from service.settings import Settings

pytestmark = pytest.mark.anyio

TEXTS = ["the team won the match", "stocks fell sharply today", "a new phone was released"]


async def _classify(client: httpx.AsyncClient, texts: list[str], model: str = "tiny-en") -> tuple[str, Any]:
    reply = await client.post("/classify", json={"texts": texts, "model": model})
    assert reply.status_code == 200, reply.text
    return reply.headers["x-request-id"], reply.json()


async def test_answers_are_logged_and_feedback_joins_them(tiny_store: Path, log_url: str) -> None:
    settings = Settings(model_store=tiny_store, prediction_log=log_url)
    async with running_app(settings) as client:
        request_id, answer = await _classify(client, TEXTS)
        answered = [result["label"] for result in answer["results"]]
        labels = (
            [row["label"] for row in answer["results"][0]["scores"]]
            if isinstance(answer["results"][0]["scores"], list)
            else list(answer["results"][0]["scores"])
        )
        # the first text is called right, the second wrong
        wrong = next(label for label in labels if label not in (answered[0], answered[1]))
        reply = await client.post(
            "/feedback",
            json={"feedback": [
                {"request_id": request_id, "item": 0, "label": answered[0], "source": "test"},
                {"request_id": request_id, "item": 1, "label": wrong},
            ]},
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"stored": 2}

        quality = (await client.get("/models/tiny-en/quality")).json()
        version = quality["versions"]["1"]
        assert version["count"] == 2 and version["accuracy"] == 0.5
        low, high = version["accuracy_interval"]
        assert 0 < low < 0.5 < high < 1
        assert version["confusion"][wrong] == {answered[1]: 1}
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "lstm_service_live_accuracy", 'model="tiny-en",version="1"') == 0.5

        # the queue offers the one text without feedback; the labelled ones are gone from it
        queue = (await client.get("/labelling/queue", params={"model": "tiny-en"})).json()
        assert [item["text"] for item in queue["items"]] == [TEXTS[2]]
        assert queue["items"][0]["request_id"] == request_id and queue["items"][0]["item"] == 2

        export = await client.get("/labelling/export", params={"model": "tiny-en"})
        assert export.status_code == 200
        assert export.text.splitlines() == ["text,label", f"{TEXTS[0]},{answered[0]}", f"{TEXTS[1]},{wrong}"]


async def test_feedback_refuses_unknown_ids_and_labels_and_stores_nothing(
    tiny_store: Path, log_url: str
) -> None:
    settings = Settings(model_store=tiny_store, prediction_log=log_url)
    async with running_app(settings) as client:
        request_id, _ = await _classify(client, TEXTS[:1])
        unknown = await client.post("/feedback", json={"request_id": "no-such-answer", "label": "x"})
        assert unknown.status_code == 404 and unknown.json()["error_type"] == "not_found"
        past_end = await client.post("/feedback", json={"request_id": request_id, "item": 5, "label": "x"})
        assert past_end.status_code == 404
        batch = {
            "feedback": [
                {"request_id": request_id, "label": "sport"},
                {"request_id": request_id, "label": "nope"},
            ]
        }
        bad_label = await client.post("/feedback", json=batch)
        assert bad_label.status_code == 422 and "nope" in bad_label.json()["error"]
        both = await client.post("/feedback", json={"request_id": request_id, "text": "x", "label": "sports"})
        assert both.status_code == 422
        text_bad = await client.post("/feedback", json={"text": "hello", "model": "tiny-en", "label": "nope"})
        assert text_bad.status_code == 422
        quality = (await client.get("/models/tiny-en/quality")).json()
        assert quality["versions"] == {}  # the refused batch left nothing behind


async def test_without_a_sql_log_the_routes_say_how_to_turn_it_on(tiny_store: Path) -> None:
    async with running_app(Settings(model_store=tiny_store)) as client:
        reply = await client.post("/feedback", json={"request_id": "abc", "label": "sports"})
        assert reply.status_code == 404 and "LSTM_SERVICE_PREDICTION_LOG" in reply.json()["error"]
        assert (await client.get("/labelling/queue")).status_code == 404


async def test_feedback_and_the_queue_need_the_api_key_when_one_is_set(
    tiny_store: Path, tmp_path: Path
) -> None:
    log = f"sqlite:///{tmp_path / 'log.db'}"
    settings = Settings(model_store=tiny_store, prediction_log=log, api_key="learning-key-0123456789")
    key = {"Authorization": "Bearer learning-key-0123456789"}
    async with running_app(settings) as client:
        reply = await client.post("/classify", json={"text": TEXTS[0], "model": "tiny-en"}, headers=key)
        request_id = reply.headers["x-request-id"]
        body = {"request_id": request_id, "label": "sport"}
        assert (await client.post("/feedback", json=body)).status_code == 401
        assert (await client.get("/labelling/queue")).status_code == 401
        assert (await client.get("/models/tiny-en/quality")).status_code == 401
        assert (await client.post("/feedback", json=body, headers=key)).json() == {"stored": 1}
        assert (await client.get("/label")).status_code == 200  # the page itself is open, like /inspect


async def test_only_the_models_named_are_logged_and_sampling_zero_point_five_logs_some(
    tiny_store: Path, tmp_path: Path
) -> None:
    log = f"sqlite:///{tmp_path / 'log.db'}"
    settings = Settings(model_store=tiny_store, prediction_log=log, prediction_log_models="tiny-zh")
    async with running_app(settings) as client:
        await _classify(client, TEXTS, model="tiny-en")
        await _classify(client, ["这个东西很好"], model="tiny-zh")
        assert (await client.get("/labelling/queue", params={"model": "tiny-en"})).json()["items"] == []
        zh = (await client.get("/labelling/queue", params={"model": "tiny-zh"})).json()["items"]
        assert [item["text"] for item in zh] == ["这个东西很好"]
    sampled = Settings(
        model_store=tiny_store, prediction_log=f"sqlite:///{tmp_path / 's.db'}", prediction_log_sample=0.5
    )
    async with running_app(sampled) as client:
        for number in range(40):
            await _classify(client, [f"text {number} about the match"])
        logged = (await client.get("/labelling/queue", params={"model": "tiny-en", "limit": 100})).json()[
            "items"
        ]
        assert 5 <= len(logged) <= 35  # about half of 40 (binomial: outside this 1 in 10^5)
