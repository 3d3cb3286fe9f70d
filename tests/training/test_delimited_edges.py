"""The CSV/TSV reader's edges that mutation testing found untested: blank lines inside the file, a header
without the wanted columns, the refusal messages for other delimiters, a two-line swallowed row, and the
csv module's field limit raised even in a fresh process."""

from __future__ import annotations

import csv

import pytest

from training.data.delimited import FIELD_LIMIT, FileError, read_rows
from training.data.reading import DataError, Example, read_file


def test_blank_lines_between_rows_are_skipped_and_the_rows_after_them_read(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\ngood,pos\n\n""\nbad,neg\n\r\nfine,pos\n', encoding="utf-8")
    assert read_rows(path, ",") == [
        {"text": "good", "label": "pos"},
        {"text": "bad", "label": "neg"},
        {"text": "fine", "label": "pos"},
    ]


def test_a_header_split_by_another_delimiter_without_the_wanted_columns_names_both(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("sentence;category\ngood;pos\n", encoding="utf-8")
    names = r"the header splits at each semicolon into the columns 'sentence', 'category'.*--delimiter ';'"
    with pytest.raises(FileError, match=names):
        read_rows(path, ",", wanted=("text", "label"))
    with pytest.raises(DataError, match=names):
        read_file(path)


def test_a_delimiter_found_in_the_header_wins_over_the_suffix(tmp_path, caplog):
    path = tmp_path / "a.tsv"
    path.write_text("text|label\ngood, fine|pos\n", encoding="utf-8")
    with caplog.at_level("INFO", logger="training"):
        assert read_rows(path, "\t", wanted=("text", "label")) == [{"text": "good, fine", "label": "pos"}]
    assert "a.tsv: delimiter pipe (found in the header)" in [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    ("delimiter", "name", "fix"),
    [
        (";", "semicolon", "quote texts that contain a semicolon, or pass the file's --delimiter"),
        ("\t", "tab", "quote texts that contain a tab, or pass the file's --delimiter"),
    ],
)
def test_a_ragged_row_names_its_delimiter_and_the_fix(tmp_path, delimiter, name, fix):
    path = tmp_path / "a.txt"
    rows = ["text", "label"], ["good", "pos"], ["one", "two", "neg"]
    path.write_text("\n".join(delimiter.join(row) for row in rows) + "\n", encoding="utf-8")
    with pytest.raises(FileError) as refused:
        read_rows(path, delimiter)
    assert str(refused.value) == (
        f"{path} line 3 (data row 2) has 3 fields but the header has 2 (text, label), "
        f"split at each {name}: {fix}"
    )


def test_a_delimiter_of_two_characters_is_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\ngood,pos\n", encoding="utf-8")
    with pytest.raises(FileError, match="--delimiter must be one character, got ';;'"):
        read_rows(path, ",", delimiter=";;")


def test_a_quote_left_open_over_one_whole_row_is_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"good,pos\nfine",pos\nbad,neg\n', encoding="utf-8")
    with pytest.raises(DataError, match="lines 2-3 are one row"):
        read_file(path)


def test_a_long_field_is_read_even_where_the_csv_limit_is_the_default(tmp_path):
    default = 128 * 1024  # the csv module's own limit, as a fresh process has it
    previous = csv.field_size_limit(default)
    try:
        path = tmp_path / "a.csv"
        path.write_text('text,label\n"' + "word " * 40_000 + '",pos\n', encoding="utf-8")
        assert read_file(path)[0] == Example(("word " * 40_000).strip(), "pos")
        assert csv.field_size_limit() == FIELD_LIMIT
    finally:
        csv.field_size_limit(previous)


def test_a_field_past_the_limit_names_the_limit_in_mib(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"' + "x" * (FIELD_LIMIT + 10) + '",pos\n', encoding="utf-8")
    with pytest.raises(DataError, match=f"a field over {FIELD_LIMIT >> 20} MiB usually means"):
        read_file(path)
    assert FIELD_LIMIT >> 20 == 16


# Whole messages: what a user reads is the contract (a mutation test found every fragment-only check).


def test_a_byte_that_does_not_decode_is_refused_with_the_whole_message(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"\ntext,label\ncaf\xe9 ok,pos\n")  # the file starts with a blank line
    with pytest.raises(FileError) as refused:
        read_rows(path, ",")
    assert str(refused.value) == (
        f"{path} line 3 (byte offset 15, value 0xe9) is not valid utf-8: pass the file's encoding with "
        "--encoding (e.g. --encoding latin-1, cp1252 or utf-16), or save the file as UTF-8"
    )


def test_an_unknown_encoding_is_refused_with_examples(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\ngood,pos\n", encoding="utf-8")
    with pytest.raises(FileError) as refused:
        read_rows(path, ",", encoding="utf-9")
    assert str(refused.value) == "unknown --encoding 'utf-9'; e.g. utf-8, latin-1, cp1252, utf-16"


def test_a_ragged_comma_row_and_a_ragged_colon_row_say_how_to_fix_them(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\ngood,pos\nplease, refund,neg\n", encoding="utf-8")
    with pytest.raises(FileError) as refused:
        read_rows(path, ",")
    assert str(refused.value) == (
        f"{path} line 3 (data row 2) has 3 fields but the header has 2 (text, label), split at each comma: "
        "quote texts that contain commas, or use --format tsv"
    )
    path.write_text("text:label\ngood:pos\nat 10:30:neg\n", encoding="utf-8")
    with pytest.raises(FileError) as refused:
        read_rows(path, ",", delimiter=":")
    assert str(refused.value).endswith(
        "split at each ':': quote texts that contain a ':', or pass the file's --delimiter"
    )


def test_a_swallowed_row_is_refused_with_the_whole_message(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"good,pos\nbad,neg\nfine",pos\n', encoding="utf-8")
    with pytest.raises(FileError) as refused:
        read_rows(path, ",")
    assert str(refused.value) == (
        f"{path} lines 2-4 are one row: the quote opened on line 2 closes only on line 4, taking the rows "
        'between into one text; close the quote, or double a quote inside a quoted text (""); a text whose '
        "every line reads as a row is taken for rows: if it really is one text, write the file as JSON lines"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            'text,label\nok,pos\n"Best" film,pos\n',
            "line 3: a quote inside the quoted text that starts on line 3 ends it before the line's end or a "
            "delimiter (',' expected after '\"'); close it, or double a quote inside a quoted text (\"\")",
        ),
        (
            'text,label\nok,pos\n"never closed,pos\nlast,neg\n',
            "lines 3-4: the quote opened on line 3 is never closed; close it, or double a quote inside a "
            'quoted text ("")',
        ),
        (
            '"text,label\nok,pos\n',
            "lines 1-2: the quote opened on line 1 is never closed; close it, or double a quote inside a "
            'quoted text ("")',
        ),
    ],
    ids=["stray-quote", "never-closed", "in-the-header"],
)
def test_a_quote_error_names_the_file_and_the_lines(tmp_path, content, message):
    path = tmp_path / "a.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FileError) as refused:
        read_rows(path, ",")
    assert str(refused.value) == f"{path} {message}"
