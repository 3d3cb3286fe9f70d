"""/explain at its edges: a multi-label model that picks no label for the text, and a text whose decision
flips at its very last token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.stores import SHAPES, copy_store, rewrite_manifest

from service.api.native.schemas import ExplainResponse
from service.settings import Settings

pytestmark = pytest.mark.anyio

# news-topic reads this as politics until its last word, which makes it business
LAST_WORD_FLIPS = {"model": "news-topic", "text": "The minister said the government would rescue the bank"}


async def test_a_flip_at_the_last_token_is_the_decision_point(default_client: httpx.AsyncClient) -> None:
    response = await default_client.post("/explain", json={**LAST_WORD_FLIPS, "trajectory": True})
    assert response.status_code == 200, response.text
    answer = ExplainResponse.model_validate(response.json())
    last = len(answer.tokens) - 1
    assert answer.tokens[last].text == "bank" and answer.label == "business"
    assert answer.trajectory is not None
    flips = [(flip.index, flip.before, flip.after) for flip in answer.trajectory.flips]
    assert flips[-1:] == [(last, ["politics"], ["business"])], flips
    assert answer.trajectory.decision_point == last
    without_it = LAST_WORD_FLIPS["text"].rsplit(" ", 1)[0]
    classified = await default_client.post("/classify", json={"model": "news-topic", "text": without_it})
    assert classified.json()["results"][0]["label"] == "politics"


async def test_a_multi_label_model_that_picks_no_label_explains_its_best_score(
    tmp_path: Path, in_process
) -> None:
    store = copy_store(SHAPES, tmp_path / "store")
    high = {"health": 0.99, "music": 0.99, "politics": 0.99, "sports": 0.99, "tech": 0.99, "travel": 0.99}
    rewrite_manifest(store / "tiny-tags" / "1", lambda manifest: manifest.update(thresholds=high))
    async with in_process(Settings(model_store=store, default_model="tiny-tags")) as client:
        classified = await client.post("/classify", json={"model": "tiny-tags", "text": "qqq zzz"})
        response = await client.post("/explain", json={"model": "tiny-tags", "text": "qqq zzz"})
    assert classified.status_code == 200 and classified.json()["results"][0]["labels"] == [], classified.text
    assert response.status_code == 200, response.text
    answer = response.json()
    best = max(answer["scores"], key=answer["scores"].get)
    assert answer["label"] == best and answer["labels"] == [best]  # explained: the best score
    assert all(set(token["attributions"]) == {best} for token in answer["tokens"])
