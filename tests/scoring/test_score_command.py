"""``lstm-service score`` on real fixture bundles: formats in and out, bad rows, refusals, the model in the
output's metadata. (Killed runs: test_score_resume.py; equality with /classify: test_same_as_classify.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.corpora import make_texts, write_parquet

from service.cli import main
from service.scoring.scorer import ScoreOptions, Scorer


def score(tmp_path: Path, store: Path, *arguments: str) -> int:
    return main(["score", *arguments, "--model-store", str(store), "--model", "tiny-en", "--quiet"])


def scored_alone(store: Path, texts: list[str]) -> list[dict[str, object]]:
    with Scorer(store, ScoreOptions(model="tiny-en")) as scorer:
        columns = scorer.score(texts)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def test_parquet_in_parquet_out_every_row_once_with_the_model_in_its_metadata(
    tiny_store: Path, tmp_path: Path
) -> None:
    texts = make_texts(2_500, seed=1)
    source = write_parquet(tmp_path / "in.parquet", texts, extra=list(range(2_500)))

    status = score(
        tmp_path,
        tiny_store,
        str(source),
        "-o",
        str(tmp_path / "out.parquet"),
        "--keep",
        "extra",
        "--chunk-rows",
        "300",
        "--processes",
        "2",
        "--batch-size",
        "16",
    )

    assert status == 0
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("row").to_pylist() == list(range(2_500))
    assert table.column("extra").to_pylist() == list(range(2_500))
    alone = scored_alone(tiny_store, texts[:50])
    assert table.slice(0, 50).select(["label", "score", "score_food", "truncated"]).to_pylist() == [
        {key: row[key] for key in ("label", "score", "score_food", "truncated")} for row in alone
    ]
    metadata = table.schema.metadata
    manifest = tiny_store / "tiny-en" / "1" / "manifest.json"
    import hashlib

    assert metadata[b"lstm_service.model"] == b"tiny-en" and metadata[b"lstm_service.version"] == b"1"
    assert (
        metadata[b"lstm_service.manifest_sha256"].decode()
        == hashlib.sha256(manifest.read_bytes()).hexdigest()
    )
    assert not (tmp_path / ".out.parquet.parts").exists()
    assert pq.read_table(tmp_path / "out.rejects.parquet").num_rows == 0


def test_a_csv_with_one_percent_bad_rows_lists_exactly_those_in_the_rejects(
    tiny_store: Path, tmp_path: Path
) -> None:
    texts = make_texts(1_000, seed=2)
    bad = {
        7: (b"", "empty"),
        150: (b"   \t ", "empty"),
        222: (b"caf\xe9 latte", "not valid UTF-8"),
        300: (b"x" * 20_001, "20001 characters (at most 20000"),
        480: (b"\xff\xfe", "not valid UTF-8"),
        555: (b"", "empty"),
        610: (b"a " * 10_001, "20002 characters"),
        777: (b"\n\n", "empty"),
        901: (b"\x80", "not valid UTF-8"),
        999: (b"  ", "empty"),
    }
    lines = [b"name,text\n"]
    for index, text in enumerate(texts):
        value = bad[index][0] if index in bad else text.encode()
        lines.append(b'n%d,"%s"\n' % (index, value))
    source = tmp_path / "in.csv"
    source.write_bytes(b"".join(lines))

    status = score(
        tmp_path,
        tiny_store,
        str(source),
        "-o",
        str(tmp_path / "out.csv"),
        "--id-column",
        "name",
        "--chunk-rows",
        "128",
        "--processes",
        "2",
    )

    assert status == 1  # rows were rejected
    rejects = pa.csv.read_csv(tmp_path / "out.rejects.csv").to_pylist()
    assert [row["name"] for row in rejects] == [f"n{index}" for index in sorted(bad)]
    for row, index in zip(rejects, sorted(bad), strict=True):
        assert bad[index][1] in row["reason"], row
    scored = pa.csv.read_csv(tmp_path / "out.csv")
    assert scored.column("name").to_pylist() == [f"n{i}" for i in range(1_000) if i not in bad]
    assert json.loads((tmp_path / "out.csv.meta.json").read_text())["lstm_service.model"] == "tiny-en"


def test_jsonl_in_with_non_text_values_and_a_broken_line(tiny_store: Path, tmp_path: Path) -> None:
    rows = [
        json.dumps({"text": "the striker scored", "id": "a"}),
        json.dumps({"text": 42, "id": "b"}),
        "{not json",
        json.dumps({"id": "d"}),
        json.dumps({"text": ["a", "list"], "id": "e"}),
        json.dumps({"text": "chips and code", "id": "f"}),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(rows) + "\n")

    status = score(
        tmp_path,
        tiny_store,
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--processes",
        "1",
        "--top-k",
        "2",
    )

    assert status == 1
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["row"] for row in out] == [0, 5]
    assert all(len(row["top_labels"]) == 2 and row["top_scores"][0] >= row["top_scores"][1] for row in out)
    reasons = {
        r["row"]: r["reason"]
        for r in map(json.loads, (tmp_path / "out.rejects.jsonl").read_text().splitlines())
    }
    assert reasons.keys() == {1, 2, 3, 4}
    assert reasons[1].startswith("not text (int") and reasons[2].startswith("line 3 is not JSON")
    assert reasons[3] == "empty (null)" and reasons[4].startswith("not text (list")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--text-column", "body"], "has no column 'body'; its columns: text, extra"),
        (["--id-column", "nope"], "has no column 'nope'"),
        (["--model", "missing"], "no model 'missing'"),
        (["--processes", "0"], "--processes must be at least 1"),
    ],
)
def test_a_bad_command_is_refused_before_work_and_leaves_nothing(
    tiny_store: Path, tmp_path: Path, arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_parquet(tmp_path / "in.parquet", ["a text", "another"], extra=[1, 2])
    before = sorted(tmp_path.iterdir())

    status = main(
        [
            "score",
            str(source),
            "-o",
            str(tmp_path / "out.parquet"),
            "--model-store",
            str(tiny_store),
            "--model",
            "tiny-en",
            "--quiet",
            *arguments,
        ]
    )

    assert status == 2
    assert message in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == before


def test_an_existing_output_or_an_unknown_format_is_refused(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_parquet(tmp_path / "in.parquet", ["a text"])
    (tmp_path / "out.parquet").write_bytes(b"keep me")

    assert score(tmp_path, tiny_store, str(source), "-o", str(tmp_path / "out.parquet")) == 2
    assert "exists already" in capsys.readouterr().err
    assert (tmp_path / "out.parquet").read_bytes() == b"keep me"
    assert score(tmp_path, tiny_store, str(source), "-o", str(tmp_path / "out.xlsx")) == 2
    assert "unknown format '.xlsx'" in capsys.readouterr().err
    text_as_numbers = write_parquet(tmp_path / "numbers.parquet", [1, 2])
    assert score(tmp_path, tiny_store, str(text_as_numbers), "-o", str(tmp_path / "n.parquet")) == 2
    assert "holds int64, not text" in capsys.readouterr().err


def test_a_run_of_another_command_in_the_way_is_refused(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_parquet(tmp_path / "in.parquet", make_texts(50))
    parts = tmp_path / ".out.parquet.parts"
    parts.mkdir()
    (parts / "run.json").write_text(json.dumps({"model": "tiny-zh"}))

    assert score(tmp_path, tiny_store, str(source), "-o", str(tmp_path / "out.parquet")) == 2
    assert "holds an interrupted run of another command" in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists()
