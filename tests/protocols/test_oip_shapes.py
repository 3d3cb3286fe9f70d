"""The tensors follow each model's graph: 2 layers and one direction (H_N is [N, L*D, H]), char bigrams, a
GRU, which has no cell state (no C_N: not in the metadata, not answered, refused by name), and a
multi-label model, whose PROBS are /classify's sigmoids, whose LABEL is /classify's label and whose LABELS
are /classify's labels, with its thresholds in its configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.apps import running_app

from service.settings import Settings

pytestmark = pytest.mark.anyio


def _text(texts: list[str]) -> dict[str, object]:
    return {"name": "TEXT", "datatype": "BYTES", "shape": [len(texts)], "data": texts}


async def _check_outputs_match_metadata(client: httpx.AsyncClient, model: str, texts: list[str]) -> dict:
    metadata = (await client.get(f"/v2/models/{model}")).json()
    answer = await client.post(f"/v2/models/{model}/infer", json={"inputs": [_text(texts)]})
    assert answer.status_code == 200, answer.text
    outputs = {output["name"]: output for output in answer.json()["outputs"]}
    assert [tensor["name"] for tensor in metadata["outputs"]] == list(outputs)
    for tensor in metadata["outputs"]:
        shape = outputs[tensor["name"]]["shape"]
        assert len(shape) == len(tensor["shape"]) and shape[0] == len(texts)
        assert all(expected in (-1, got) for expected, got in zip(tensor["shape"], shape, strict=True))
    config = (await client.get(f"/v2/models/{model}/config")).json()
    assert [tensor["name"] for tensor in config["output"]] == list(outputs)
    return outputs


async def test_two_layers_one_direction_and_char_bigrams(shapes_store: Path) -> None:
    async with running_app(Settings(model_store=shapes_store)) as client:
        deep = await _check_outputs_match_metadata(client, "tiny-deep", ["goal for the team", "bread"])
        assert (
            deep["H_N"]["shape"][:2] == [2, 2] and deep["C_N"]["shape"] == deep["H_N"]["shape"]
        )  # 2 layers x 1
        assert deep["HIDDEN_STATES"]["shape"][2] == deep["H_N"]["shape"][2]  # one direction: H, not 2H
        await _check_outputs_match_metadata(client, "tiny-bigram", ["这个东西很好", "太差了"])


async def test_the_committed_gru_has_no_cell_state(shapes_store: Path) -> None:
    async with running_app(Settings(model_store=shapes_store)) as client:
        outputs = await _check_outputs_match_metadata(client, "tiny-gru", ["goal for the team", "bread"])
        assert "C_N" not in outputs and outputs["H_N"]["shape"][0] == 2
        asked = {"inputs": [_text(["goal"])], "outputs": [{"name": "C_N"}]}
        refused = await client.post("/v2/models/tiny-gru/infer", json=asked)
        assert refused.status_code == 422 and "unknown output 'C_N'" in refused.json()["error"]


async def test_a_multi_label_model_answers_as_classify(shapes_store: Path) -> None:
    texts = ["goal for the team", "the music and the travel", "zzz"]
    async with running_app(Settings(model_store=shapes_store)) as client:
        outputs = await _check_outputs_match_metadata(client, "tiny-tags", texts)
        classified: list[dict[str, Any]] = (
            await client.post("/classify", json={"model": "tiny-tags", "texts": texts})
        ).json()["results"]
    labels = ["health", "music", "politics", "sports", "tech", "travel"]
    expected = np.array(
        [[result["scores"][label] for label in labels] for result in classified], dtype=np.float32
    )
    np.testing.assert_array_equal(
        np.array(outputs["PROBS"]["data"], dtype=np.float32).reshape(3, 6), expected
    )
    assert outputs["LABEL"]["data"] == [result["label"] or "" for result in classified]
    # LABELS: every label over its threshold, best first, padded with empty strings to [N, C]
    assert outputs["LABELS"]["shape"] == [3, 6]
    rows = [outputs["LABELS"]["data"][row * 6 : (row + 1) * 6] for row in range(3)]
    assert [[label for label in row if label] for row in rows] == [result["labels"] for result in classified]
    assert any(len(result["labels"]) > 1 for result in classified)  # the case a single LABEL cannot say


async def test_a_multi_label_model_s_thresholds_are_in_its_configuration(shapes_store: Path) -> None:
    import json

    from service.bundle import load_bundle

    async with running_app(Settings(model_store=shapes_store)) as client:
        tags = (await client.get("/v2/models/tiny-tags/config")).json()["parameters"]
        single = (await client.get("/v2/models/tiny-gru/config")).json()["parameters"]
        single_outputs = (await client.get("/v2/models/tiny-gru")).json()["outputs"]
    manifest = load_bundle(shapes_store / "tiny-tags" / "1").manifest
    assert tags["task"] == {"string_value": "multi-label"}
    assert json.loads(tags["thresholds"]["string_value"]) == dict(manifest.thresholds or {})
    assert single["task"] == {"string_value": "single-label"} and "thresholds" not in single
    assert "LABELS" not in [tensor["name"] for tensor in single_outputs]
