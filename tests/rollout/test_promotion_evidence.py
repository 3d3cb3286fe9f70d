"""A candidate published with two labels swapped shadows the served version; feedback on the logged answers
makes ``lstm-service promote`` (and the admin route) refuse it, quoting the figures; ``--force`` still
promotes; ``compare`` shows the disagreement."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.apps import ADMIN, ADMIN_TOKEN, parse_metrics, running_app, series
from support.data import tiny_examples
from support.live_server import REPO

from service.bundle import load_bundle, write_bundle
from service.rollout.state import ROLLOUT_FILE
from service.settings import Settings

pytestmark = pytest.mark.anyio


def _swapped_candidate(store: Path) -> None:
    """tiny-en version 2: version 1's graph with 'food' and 'sport' swapped in labels.json."""
    original = load_bundle(store / "tiny-en" / "1")
    labels = list(original.labels)
    first, second = labels.index("food"), labels.index("sport")
    labels[first], labels[second] = labels[second], labels[first]
    write_bundle(store, "tiny-en", original.model_path, original.tokenizer, labels, original.manifest, 2)


def _cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *arguments], cwd=REPO, capture_output=True, text=True, timeout=120
    )


async def test_a_candidate_with_two_labels_swapped_is_refused_on_the_evidence(
    store_copy: Path, tmp_path: Path
) -> None:
    _swapped_candidate(store_copy)
    log = f"sqlite:///{tmp_path / 'log.db'}"
    settings = Settings(
        model_store=store_copy,
        admin_token=ADMIN_TOKEN,
        default_model="tiny-en",
        pinned={"tiny-en": 1},
        prediction_log=log,
        rollout_poll_seconds=0.2,
    )
    examples = tiny_examples("en", per_label=10, seed=3)
    async with running_app(settings) as client:
        shadowed = await client.put("/admin/models/tiny-en/shadow", json={"version": 2}, headers=ADMIN)
        assert shadowed.status_code == 200, shadowed.text

        async def shadow_outcomes() -> dict[str, float]:
            metrics = parse_metrics((await client.get("/metrics")).text)
            return {
                outcome: metrics.get(
                    series(
                        "lstm_service_shadow_requests_total", model="tiny-en", version="2", outcome=outcome
                    ),
                    0,
                )
                for outcome in ("agreed", "disagreed", "shed", "failed")
            }

        for sent, (text, label) in enumerate(examples, start=1):
            answer = await client.post("/classify", json={"text": text})
            assert answer.json()["version"] == 1
            feedback = await client.post(
                "/feedback", json={"request_id": answer.headers["x-request-id"], "label": label}
            )
            assert feedback.status_code == 200, feedback.text
            # One request at a time, its shadow copy run before the next: a copy is shed only while the
            # primary has work queued, which a loaded machine's slow shadow run would otherwise meet.
            for _ in range(600):
                outcomes = await shadow_outcomes()
                if sum(outcomes.values()) >= sent:
                    break
                await asyncio.sleep(0.05)
        metrics = parse_metrics((await client.get("/metrics")).text)
        assert outcomes["agreed"] + outcomes["disagreed"] == len(examples), outcomes
        assert (
            metrics[
                series(
                    "lstm_service_shadow_requests_total", model="tiny-en", version="2", outcome="disagreed"
                )
            ]
            > 0
        )
        before = (store_copy / "tiny-en" / ROLLOUT_FILE).read_text()

        refused = await client.post("/admin/models/tiny-en/promote", json={"version": 2}, headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error_type"] == "conflict"
        assert "McNemar" in refused.json()["error"]
        assert (store_copy / "tiny-en" / ROLLOUT_FILE).read_text() == before

        compared = await client.get(
            "/admin/models/tiny-en/compare", params={"a": "1", "b": "2"}, headers=ADMIN
        )
        assert compared.status_code == 200, compared.text
        figures = compared.json()
    assert figures["texts_both_answered"] == len({text for text, _ in examples})
    assert figures["agreement"] < 0.5
    assert figures["a"]["accuracy"] > figures["b"]["accuracy"]
    assert figures["confusion"]["food"].get("sport", 0) > 0  # what 1 calls food, 2 calls sport
    assert figures["a"]["latency_p99_ms"] is not None

    command = _cli("promote", "tiny-en", "2", "--model-store", str(store_copy), "--prediction-log", log)
    assert command.returncode == 1, command.stderr
    message = command.stderr
    assert "refused" in message and "significantly less accurate than version 1" in message
    judged = figures["paired"]["judged"]
    right_1 = figures["paired"]["only_a_right"] + figures["paired"]["both_right"]
    assert f"on the {judged} texts with feedback that both answered" in message
    assert f"version 1 on {100 * right_1 / judged:.1f} % ({right_1}/{judged})" in message
    assert "McNemar's exact test, one-sided p = " in message and "--force" in message
    assert (store_copy / "tiny-en" / ROLLOUT_FILE).read_text() == before

    shown = _cli("compare", "tiny-en", "1", "2", "--model-store", str(store_copy), "--prediction-log", log)
    assert shown.returncode == 0, shown.stderr
    assert "live accuracy" in shown.stdout and "confusion" in shown.stdout

    forced = _cli(
        "promote", "tiny-en", "2", "--force", "--why", "tested", "--model-store", str(store_copy),
        "--prediction-log", log,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    history = json.loads((store_copy / "tiny-en" / ROLLOUT_FILE).read_text())["history"]
    assert (history[-1]["action"], history[-1]["to"], history[-1]["why"]) == ("promote", 2, "tested")
    assert "McNemar" in history[-1]["evidence"]
