"""The prediction log's parts called directly: migrations, pruning, the JSONL sink's rotation, the queue's
order, the quality arithmetic."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from service.predictions.jsonl import JsonlSink
from service.predictions.quality import summarize, wilson
from service.predictions.records import Answered, rows
from service.predictions.schema import MIGRATIONS, current_version, migrate
from service.predictions.sql import SqlStore, rank


def _answered(
    request_id: str, texts: list[str], scores: list[list[float]], created: float | None = None
) -> Answered:
    return Answered(
        request_id, created or time.time(), "m", 1, ["a", "b", "c"], False, None, texts,
        np.asarray(scores), 1.0, "/classify",
    )  # fmt: skip


def test_migrations_apply_once_and_upgrade_in_order(tmp_path: Path, log_url: str) -> None:
    if log_url.startswith("sqlite:///"):
        Path(log_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(log_url.replace("postgresql://", "postgresql+psycopg://", 1))
    assert migrate(engine) == len(MIGRATIONS) == 1
    assert migrate(engine) == 1  # nothing left to apply

    def add_column(connection: sa.Connection) -> None:
        connection.execute(sa.text("ALTER TABLE predictions ADD COLUMN shadow_of INTEGER"))

    assert migrate(engine, [*MIGRATIONS, add_column]) == 2
    with engine.connect() as connection:
        assert current_version(connection) == 2
        assert "shadow_of" in {c["name"] for c in sa.inspect(connection).get_columns("predictions")}
    with pytest.raises(RuntimeError, match="newer than this server knows"):
        migrate(engine)  # a log upgraded by a newer server
    engine.dispose()


def test_rows_carry_margin_entropy_and_the_answer() -> None:
    (row,) = rows(_answered("r", ["t"], [[0.1, 0.6, 0.3]]), "hash")
    record = dict(zip(("request_id", "item"), row[:2], strict=True))
    assert record == {"request_id": "r", "item": 0}
    assert row[7] is None and len(row[8]) == 64  # hash only
    assert orjson.loads(row[9]) == {"a": 0.1, "b": 0.6, "c": 0.3} and orjson.loads(row[10]) == ["b"]
    assert row[12] == pytest.approx(0.3) and row[13] == pytest.approx(0.898, abs=1e-3)


def test_a_retried_batch_is_not_doubled_and_pruning_keeps_the_newest(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'p.db'}")
    old = rows(
        _answered("old", ["x", "y"], [[1, 0, 0], [0, 1, 0]], created=time.time() - 10 * 86_400), "full"
    )
    new = rows(_answered("new", ["z"], [[0, 0, 1]]), "full")
    store.write(old + new)
    store.write(new)  # the same batch again, as after a failed commit
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM predictions")).scalar() == 3
    assert store.prune(older_than_seconds=86_400, max_rows=0) == 2
    store.write(rows(_answered("newer", ["w", "v"], [[0, 0, 1], [1, 0, 0]]), "full"))
    assert store.prune(older_than_seconds=0, max_rows=2) == 1
    store.close()


def test_the_queue_folds_duplicates_and_orders_by_the_strategy() -> None:
    fields = ("request_id", "text_sha256", "top_label", "version", "margin", "entropy")
    candidates = [
        {**dict(zip(fields, values, strict=True)), "item": 0, "scores": {}, "labels": [values[2]]}
        for values in (
            ("1", "t1", "a", 1, 0.5, 0.2),
            ("2", "t1", "b", 2, 0.1, 0.3),
            ("3", "t2", "a", 1, 0.05, 0.9),
        )
    ]
    by_margin = rank([dict(c) for c in candidates], "margin")
    assert [(g["text_sha256"], g["seen"], g["request_id"]) for g in by_margin] == [
        ("t2", 1, "3"),
        ("t1", 2, "2"),
    ]
    assert [g["text_sha256"] for g in rank([dict(c) for c in candidates], "disagreement")] == ["t1", "t2"]
    assert [g["text_sha256"] for g in rank([dict(c) for c in candidates], "entropy")] == ["t2", "t1"]
    assert by_margin[1]["answers"] == ["a", "b"] and by_margin[1]["versions"] == [1, 2]


def test_jsonl_rotates_and_prunes_whole_files(tmp_path: Path) -> None:
    sink = JsonlSink(f"jsonl://{tmp_path}", rotate_bytes=200)
    for number in range(4):
        sink.write(rows(_answered(f"r{number}", ["some text"], [[0.2, 0.5, 0.3]]), "full"))
    files = sorted(tmp_path.glob("predictions-*.jsonl"))
    assert len(files) >= 2
    assert orjson.loads(files[0].read_bytes().splitlines()[0])["request_id"] == "r0"
    assert sink.prune(older_than_seconds=0, max_rows=1) >= 1
    assert len(list(tmp_path.glob("predictions-*.jsonl"))) < len(files)
    sink.close()


def test_quality_arithmetic() -> None:
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    single = summarize([(["a"], ["a"]), (["a"], ["b"]), (["b"], ["b"])], multi_label=False)
    assert single["accuracy"] == pytest.approx(2 / 3) and single["confusion"] == {
        "a": {"a": 1},
        "b": {"a": 1, "b": 1},
    }
    assert single["per_label"]["a"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    multi = summarize([(["a", "b"], ["a"]), (["c"], ["c"])], multi_label=True)
    assert multi["accuracy"] == 0.5 and multi["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))
