"""The mistakes people make in their data files: each is refused (or warned about) with the line and the fix,
never trained on silently and never a traceback."""

from __future__ import annotations

import logging

import pytest

from training.data.delimited import FIELD_LIMIT
from training.data.reading import DataError, Example, read_file, read_labelled
from training.data.source import DataSpec


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_unquoted_commas_are_refused_with_the_row_and_the_fix(tmp_path):
    path = _write(
        tmp_path / "tickets.csv",
        "text,label\nmy printer is broken,technical\nplease, refund my order,billing\nhello,other\n",
    )
    with pytest.raises(DataError) as refused:
        read_file(path)
    message = str(refused.value)
    assert "line 3 (data row 2) has 3 fields but the header has 2" in message
    assert "quote texts that contain commas, or use --format tsv" in message


def test_ragged_row_with_fewer_fields_is_refused(tmp_path):
    path = _write(tmp_path / "a.csv", "text,label\ngood,pos\nbad\nfine,pos\n")
    with pytest.raises(DataError, match="line 3 .* has 1 fields but the header has 2"):
        read_file(path)


def test_semicolon_delimited_file_is_read(tmp_path):
    path = _write(tmp_path / "a.csv", "text;label\ngood, really;pos\nbad;neg\n")
    assert read_file(path) == [Example("good, really", "pos"), Example("bad", "neg")]


def test_explicit_delimiter_wins_and_a_wrong_one_says_how_to_fix_it(tmp_path):
    path = _write(tmp_path / "a.csv", "text;label\ngood;pos\nbad;neg\n")
    with pytest.raises(DataError, match="lacks 'text' or 'label' .*--delimiter"):
        read_file(path, delimiter=",")
    assert read_file(path, delimiter=";") == [Example("good", "pos"), Example("bad", "neg")]


def test_latin1_file_names_file_line_byte_and_fix(tmp_path):
    path = _write(tmp_path / "a.csv", "text,label\ngood,pos\ncaf\u00e9 ok,neg\n", "latin-1")
    with pytest.raises(DataError) as refused:
        read_file(path)
    message = str(refused.value)
    assert str(path) in message and "line 3" in message and "byte offset 23" in message and "0xe9" in message
    assert "--encoding latin-1" in message
    assert read_file(path, encoding="latin-1")[1] == Example("caf\u00e9 ok", "neg")


def test_utf16_with_a_byte_order_mark_is_read(tmp_path):
    path = _write(tmp_path / "a.csv", "\ufefftext,label\ngood,pos\nbad,neg\n", "utf-16-le")
    assert read_file(path) == [Example("good", "pos"), Example("bad", "neg")]


def test_a_byte_order_mark_is_not_part_of_the_header_whatever_the_encoding_named(tmp_path):
    path = _write(tmp_path / "a.csv", "\ufefftext,label\ngood,pos\n")
    assert read_file(path, encoding="utf-8") == read_file(path) == [Example("good", "pos")]


def test_jsonl_in_another_encoding(tmp_path):
    path = _write(tmp_path / "a.jsonl", '{"text": "caf\u00e9", "label": "a"}\n', "latin-1")
    with pytest.raises(DataError, match="line 1 .*--encoding"):
        read_file(path)
    assert read_file(path, encoding="latin-1") == [Example("caf\u00e9", "a")]


def test_unbalanced_quote_does_not_swallow_rows(tmp_path):
    path = _write(tmp_path / "a.csv", 'text,label\n"good,pos\nbad,neg\nfine",pos\n')
    with pytest.raises(DataError, match="lines 2-4 are one row: the quote opened on line 2"):
        read_file(path)


def test_quote_left_open_to_the_end_is_refused(tmp_path):
    path = _write(tmp_path / "a.csv", 'text,label\ngood,pos\n"bad,neg\nfine,pos\n')
    with pytest.raises(DataError, match="line 3"):
        read_file(path)


def test_a_text_over_several_lines_is_still_fine(tmp_path):
    path = _write(tmp_path / "a.csv", 'text,label\n"first line\nsecond line",pos\nbad,neg\n')
    assert read_file(path)[0] == Example("first line\nsecond line", "pos")


def test_field_over_128_kib_is_read(tmp_path):
    long_text = "word " * 40_000  # 200,000 characters: past the csv module's default limit of 131,072
    path = _write(tmp_path / "a.csv", f'text,label\n"{long_text}",pos\nbad,neg\n')
    assert read_file(path)[0].text == long_text.strip()


def test_field_past_the_limit_is_refused_clearly(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"' + "x" * (FIELD_LIMIT + 10) + '",pos\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: field larger than field limit.*unbalanced quote"):
        read_file(path)


def test_many_skipped_rows_are_a_warning(tmp_path, caplog):
    rows = "".join(f"text {i},{'' if i % 3 == 0 else 'pos' if i % 2 else 'neg'}\n" for i in range(30))
    path = _write(tmp_path / "a.csv", "text,label\n" + rows)
    with caplog.at_level(logging.INFO, logger="training"):
        read_file(path)
    skipped = [record for record in caplog.records if "skipped 10 of 30 rows (33%)" in record.message]
    assert skipped and skipped[0].levelno == logging.WARNING


def test_labels_with_very_few_examples_are_a_warning(tmp_path, caplog):
    rows = "".join(f"text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(20)) + "odd one,rare\n"
    path = _write(tmp_path / "a.csv", "text,label\n" + rows)
    with caplog.at_level(logging.INFO, logger="training"):
        read_labelled(path)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert any("fewer than 5 examples ('rare': 1)" in record.message for record in warnings)


def test_data_spec_records_and_uses_delimiter_and_encoding(tmp_path):
    rows = "".join(f"caf\u00e9 {i};{'pos' if i % 2 else 'neg'}\n" for i in range(40))
    path = _write(tmp_path / "a.txt", "text;label\n" + rows, "latin-1")
    spec = DataSpec(data=str(path), format="csv", delimiter=";", encoding="latin-1")
    splits = spec.load()
    assert splits.labels == ["neg", "pos"]
    assert splits.report["source"]["delimiter"] == ";" and splits.report["source"]["encoding"] == "latin-1"
    assert DataSpec.from_dict(splits.report["source"]).load().counts() == splits.counts()
