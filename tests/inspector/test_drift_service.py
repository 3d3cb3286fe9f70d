"""Input drift as the service shows it: the training quantiles in /metrics next to the served histograms,
and the documented alert rule's series."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
import pytest
import yaml

from service.bundle import load_bundle, measure_inputs, write_bundle
from service.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.api]

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "store" / "tiny-zh" / "1"
TRAINING_TEXTS = ["质量真的差", "物流快，喜欢", "这个东西不错", "我买了书", "非常满意推荐"]
RULES = REPO / "docs" / "alerts" / "input-drift.yml"


def _series(metrics_text: str, name: str, **labels: str) -> float | None:
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def drift_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-zh/1 with a drift record measured on a few texts (written through the bundle contract)."""
    root = tmp_path_factory.mktemp("drift") / "store"
    bundle = load_bundle(FIXTURE)
    manifest = dataclasses.replace(bundle.manifest, drift=measure_inputs(bundle.tokenizer, TRAINING_TEXTS))
    write_bundle(root, "tiny-zh", FIXTURE / "model.onnx", bundle.tokenizer, bundle.labels, manifest, 1)
    return root


@pytest.fixture(scope="module")
async def client(drift_store: Path, in_process: object):  # type: ignore[no-untyped-def]
    async with in_process(Settings(model_store=drift_store)) as client:  # type: ignore[operator]
        yield client


async def test_metrics_show_the_training_quantiles_next_to_the_served_histograms(
    client: httpx.AsyncClient, drift_store: Path
) -> None:
    drift = load_bundle(drift_store / "tiny-zh" / "1").manifest.drift
    assert drift is not None
    before = (await client.get("/metrics")).text
    texts = ["质量真的差", "ＸＹＺ＠＃质量"]  # the second one half unknown characters
    assert (await client.post("/classify", json={"model": "tiny-zh", "texts": texts})).status_code == 200
    after = (await client.get("/metrics")).text

    labels = {"model": "tiny-zh", "version": "1"}
    for quantile, value in (("0.5", drift.unknown_token_ratio.p50), ("0.9", drift.unknown_token_ratio.p90)):
        assert (
            _series(after, "lstm_service_training_unknown_token_ratio", quantile=quantile, **labels) == value
        )
    assert _series(after, "lstm_service_training_tokens_per_text", quantile="0.99", **labels) == (
        drift.tokens_per_text.p99
    )
    count = "lstm_service_unknown_token_ratio_count"
    added = (_series(after, count, **labels) or 0) - (_series(before, count, **labels) or 0)
    assert added == 2
    over_half = "lstm_service_unknown_token_ratio_bucket"
    below = (_series(after, over_half, le="0.3", **labels) or 0) - (
        _series(before, over_half, le="0.3", **labels) or 0
    )
    assert below == 1  # the known text only


def test_the_documented_alert_rule_uses_series_the_service_exports() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (group,) = rules["groups"]
    expressions = [rule["expr"] for rule in group["rules"]]
    assert any("histogram_quantile(0.5" in expression for expression in expressions)
    names = set(re.findall(r"lstm_service_[a-z_]+", " ".join(expressions)))
    assert names == {
        "lstm_service_unknown_token_ratio_bucket",
        "lstm_service_training_unknown_token_ratio",
        "lstm_service_tokens_per_text_bucket",
        "lstm_service_training_tokens_per_text",
    }


async def test_classify_gives_the_unknown_ratio_when_asked(client: httpx.AsyncClient) -> None:
    texts = ["质量真的差", "ＸＹＺ＠＃质量"]
    asked = await client.post("/classify", json={"model": "tiny-zh", "texts": texts, "unk_ratio": True})
    plain = await client.post("/classify", json={"model": "tiny-zh", "texts": texts})
    tokenized = (await client.post("/tokenize", json={"model": "tiny-zh", "texts": texts})).json()

    assert asked.status_code == plain.status_code == 200
    expected = [
        sum(token["unk"] for token in result["tokens"]) / len(result["tokens"])
        for result in tokenized["results"]
    ]
    assert [result["unk_ratio"] for result in asked.json()["results"]] == expected
    assert expected[0] == 0 and expected[1] == 5 / 7
    assert all("unk_ratio" not in result for result in plain.json()["results"])  # unchanged unless asked
    for asked_result, plain_result in zip(asked.json()["results"], plain.json()["results"], strict=True):
        assert {key: value for key, value in asked_result.items() if key != "unk_ratio"} == plain_result


async def test_unk_ratio_must_be_a_boolean(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", json={"model": "tiny-zh", "text": "好", "unk_ratio": "yes"})

    assert response.status_code == 422 and response.json()["error_type"] == "validation"


async def test_the_model_detail_shows_the_training_distribution(
    client: httpx.AsyncClient, drift_store: Path
) -> None:
    detail = (await client.get("/models/tiny-zh")).json()
    drift = load_bundle(drift_store / "tiny-zh" / "1").manifest.drift

    assert drift is not None and detail["drift"] == drift.to_dict()
    assert detail["drift"]["texts"] == len(TRAINING_TEXTS)


async def test_the_default_models_show_their_recorded_distribution(default_client: httpx.AsyncClient) -> None:
    news = (await default_client.get("/models/news-topic")).json()["drift"]
    reviews = (await default_client.get("/models/review-sentiment-zh")).json()["drift"]

    assert (news["split"], news["texts"], reviews["texts"]) == ("train", 1703, 13891)
    assert 0 < news["unknown_token_ratio"]["p50"] < news["unknown_token_ratio"]["p90"] < 0.1
    assert reviews["unknown_token_ratio"]["max"] == 0  # every training character is in the vocabulary
    assert news["tokens_per_text"]["p50"] == 385 and reviews["tokens_per_text"]["p50"] == 45
