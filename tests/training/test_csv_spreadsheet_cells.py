"""CSV files as spreadsheets and Python's ``csv`` module write them: multi-line quoted cells with delimiters
and doubled quotes inside are read as written, and a quote that is truly left open is still refused with
its line range."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from training.data.delimited import FileError, read_rows
from training.data.reading import DataError, Example, read_file

REVIEW = "Great product.\nFast shipping, would buy again"


def _written(path, rows, *, lineterminator="\r\n", header=("text", "label")):
    """``rows`` as ``csv.writer`` writes them (its default line ending is CRLF, as a spreadsheet's export)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return path


def test_a_cell_with_a_comma_on_its_inner_line_is_read(tmp_path):
    path = _written(tmp_path / "reviews.csv", [(REVIEW, "pos"), ("Broke in a day", "neg")])
    assert read_file(path) == [Example(REVIEW, "pos"), Example("Broke in a day", "neg")]


@pytest.mark.parametrize(
    "text",
    [
        'He said "fine" and\nleft, slammed the door, said "bye"',  # doubled quotes, a comma inside
        "Cheap, fast, good\nPick two, they say, always",  # each line splits into three: more than the header
        "Line one\n\nline three, after a blank line",
        "First a\r\nCRLF inside the cell, then\rlone CR, too",
    ],
)
def test_multi_line_cells_with_commas_and_quotes_are_read_as_written(tmp_path, text):
    path = _written(tmp_path / "a.csv", [(text, "pos"), ("plain", "neg")])
    assert [row["text"] for row in read_rows(path, ",")] == [text, "plain"]


def test_a_cell_whose_lines_are_rows_of_three_columns_is_read_where_the_header_has_two(tmp_path):
    # each inner line splits into three fields; only a split into the header's two is a swallowed row
    text = "a, b, c\nd, e, f\ng"
    path = _written(tmp_path / "a.csv", [(text, "pos")])
    assert read_rows(path, ",")[0]["text"] == text


@pytest.mark.slow  # trains and exports a bundle: leave it out of make mutate's runs of every reader mutant
def test_the_spreadsheet_review_trains(tmp_path):
    pytest.importorskip("torch")
    from support.data import tiny_examples
    from support.training import train_tiny

    examples = tiny_examples("en", per_label=10)
    _written(tmp_path / "tiny-en.csv", [(REVIEW, examples[0][1]), *examples])  # the file train_tiny reads
    bundle = train_tiny(tmp_path / "store", "shop", data_folder=tmp_path, epochs=1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["name"] == "shop"


def test_a_quote_left_open_over_whole_rows_is_still_refused_with_its_lines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\nok,pos\n"good,pos\nbad,neg\nfine",pos\nlast,neg\n', encoding="utf-8")
    with pytest.raises(
        DataError, match="lines 3-5 are one row: the quote opened on line 3 closes only on line 5"
    ):
        read_file(path)


def test_a_quote_left_open_is_found_when_the_text_is_not_the_first_column(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('label,text\npos,"good\nneg,bad\npos,fine"\n', encoding="utf-8")
    with pytest.raises(DataError, match="lines 2-4 are one row"):
        read_file(path)


def test_a_quote_never_closed_is_refused_with_the_line_it_opens_on(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\ngood,pos\n"bad, really,neg\nfine,pos\n', encoding="utf-8")
    with pytest.raises(DataError, match="lines 3-4: the quote opened on line 3 is never closed"):
        read_file(path)


def test_a_stray_quote_inside_a_quoted_text_is_refused_not_dropped(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\nok,pos\n"Best" film ever,pos\n', encoding="utf-8")
    with pytest.raises(DataError, match=r'line 3: a quote inside the quoted text .*double a quote .*\(""\)'):
        read_file(path)


def test_lone_cr_line_endings_read_like_newlines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text;label\r"two\rlines; here";pos\rbad;neg\r', encoding="utf-8", newline="")
    assert read_rows(path, ",", wanted=("text", "label")) == [
        {"text": "two\rlines; here", "label": "pos"},
        {"text": "bad", "label": "neg"},
    ]


# Any text a person might type into a cell: delimiters, quotes, line breaks, spaces, letters.
CELL = st.text(alphabet=st.sampled_from(list('ab ,;"\t\n\r\u00e9')), max_size=24)


def _looks_like_rows(text: str, delimiter: str) -> bool:
    """Every line before the last is a two-field row: the one shape of a cell that cannot be told apart
    from a quote left open over rows of a two-column file (refused, by design)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]
    kept = [line for line in lines if line.strip()]
    return bool(lines) and bool(lines[0].strip()) and all(line.count(delimiter) == 1 for line in kept)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(CELL, min_size=1, max_size=4), delimiter=st.sampled_from([",", ";", "\t"]))
@example(texts=[',",\r'], delimiter=",")  # a doubled quote on the first line: once taken for rows
def test_csv_writer_output_reads_back_as_written(tmp_path, texts, delimiter):
    path = tmp_path / "cells.csv"
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)  # CRLF: it quotes every cell with a CR or LF
    writer.writerow(["text", "label"])
    writer.writerows([(text, "pos") for text in texts])
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    try:
        rows = read_rows(path, ",", delimiter=delimiter)
    except FileError as refused:
        assert "are one row" in str(refused), (texts, str(refused))
        assert any(_looks_like_rows(text, delimiter) for text in texts), (texts, str(refused))
        return
    assert [row["text"] for row in rows] == texts
    assert all(row["label"] == "pos" for row in rows)
