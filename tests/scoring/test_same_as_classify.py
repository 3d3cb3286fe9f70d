"""``lstm-service score`` answers what ``POST /classify`` answers for the same texts, to 1e-6: both default
models and a multi-label fixture, 1,000 texts each (the same engine verb behind both)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from support.corpora import make_texts, write_parquet
from support.stores import SHAPES

from service.cli import main
from service.settings import Settings

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
COUNT = 1_000

CASES = [  # (store, model, texts)
    (REPO / "model_store", "news-topic", lambda: make_texts(COUNT, seed=21, data_file="tiny-tags.csv")),
    (REPO / "model_store", "review-sentiment-zh",
     lambda: make_texts(COUNT, seed=22, data_file="tiny-zh.csv", joiner="")),
    (SHAPES, "tiny-tags", lambda: make_texts(COUNT, seed=23, data_file="tiny-tags.csv")),
]  # fmt: skip


@pytest.mark.parametrize(("store", "model", "make"), CASES, ids=[case[1] for case in CASES])
async def test_the_command_answers_as_classify(
    store: Path,
    model: str,
    make: Callable[[], list[str]],
    tmp_path: Path,
    start_app: Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> None:
    texts = make()
    source = write_parquet(tmp_path / "in.parquet", texts)
    command = ["score", str(source), "-o", str(tmp_path / "out.parquet"), "--model-store", str(store),
               "--model", model, "--processes", "1", "--quiet"]  # fmt: skip
    status = await asyncio.to_thread(main, command)  # the scorer runs an event loop of its own
    assert status == 0
    scored = pq.read_table(tmp_path / "out.parquet").to_pylist()

    answers = []
    async with start_app(Settings(model_store=store, default_model=model)) as client:
        for start in range(0, COUNT, 250):
            response = await client.post(
                "/classify", json={"texts": texts[start : start + 250], "model": model}
            )
            assert response.status_code == 200
            answers += response.json()["results"]

    assert [row["row"] for row in scored] == list(range(COUNT))
    multi_label = "labels" in answers[0]
    for row, answer in zip(scored, answers, strict=True):
        assert row["label"] == answer["label"] and row["truncated"] == answer["truncated"]
        assert row["score"] == pytest.approx(answer["score"], abs=1e-6)
        assert {label: row[f"score_{label}"] for label in answer["scores"]} == pytest.approx(
            answer["scores"], abs=1e-6
        )
        if multi_label:
            assert row["labels"] == answer["labels"]
    if multi_label:  # the fixture's thresholds decide: some texts get several labels, some none
        assert any(len(row["labels"]) > 1 for row in scored) or any(not row["labels"] for row in scored)
