"""A CSV/TSV file's bytes → its rows, strictly: every mistake in the file is refused with its line and the
fix. :func:`training.data.reading.read_labelled` reads data files (any format) and calls this for CSV/TSV.

- The bytes are decoded with the given encoding (default UTF-8, a UTF-8 or UTF-16 byte-order mark is
  honoured); a byte that does not decode is refused with the file, line and byte offset.
- The delimiter is the given one, else the one of ``, ; TAB |`` that splits the header into columns
  that include the text and label columns, else the suffix's (``,`` for CSV, TAB for TSV).
- A row with more or fewer fields than the header is refused: unquoted commas in a text would otherwise
  cut the text at the first comma and turn the fragments into labels.
- A quoted field may span lines and hold delimiters and doubled quotes (as spreadsheets and Python's
  ``csv`` module write them). One whose every line before the closing one is itself a whole row is refused
  as an unbalanced quote: it would silently swallow the rows up to the next quote. A quote that is never
  closed, or a quote in the middle of a quoted field, is refused with its line range.
- Fields up to :data:`FIELD_LIMIT` characters are read (the csv module's default limit is 128 KiB).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

CANDIDATES = (",", ";", "\t", "|")
FIELD_LIMIT = 16 << 20  # characters per field: a long document, not a whole swallowed file
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# The line breaks the csv module ends a record at: a lone CR too (old Mac files, some exports).
LINE_BREAK = re.compile(r"\r\n|\r|\n")


class FileError(ValueError):
    """A file that cannot be read as it is; the message names the file, the line and the fix."""


def decode(path: Path, encoding: str | None) -> str:
    """The file's text; a byte the encoding cannot decode is refused with its line and offset."""
    data = path.read_bytes()
    if encoding is None:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding = "utf-16"
        else:
            encoding = "utf-8-sig"
    try:
        codecs.lookup(encoding)
    except LookupError as error:
        raise FileError(f"unknown --encoding {encoding!r}; e.g. utf-8, latin-1, cp1252, utf-16") from error
    try:
        return data.decode(encoding).removeprefix("\ufeff")  # a byte-order mark is not part of the header
    except UnicodeDecodeError as error:
        # utf-8-sig counts positions after the byte-order mark it strips: the offset in the file is later
        skipped = len(codecs.BOM_UTF8) if encoding == "utf-8-sig" and data.startswith(codecs.BOM_UTF8) else 0
        start = error.start + skipped
        line = data.count(b"\n", 0, start) + 1
        byte = data[start : start + 1].hex()
        name = encoding.removesuffix("-sig")
        raise FileError(
            f"{path} line {line} (byte offset {start}, value 0x{byte}) is not valid {name}: "
            "pass the file's encoding with --encoding (e.g. --encoding latin-1, cp1252 or utf-16), "
            "or save the file as UTF-8"
        ) from error


def pick_delimiter(path: Path, text: str, fallback: str, wanted: tuple[str, ...]) -> str:
    """The candidate that splits the header into the ``wanted`` columns, else ``fallback``."""
    header = LINE_BREAK.split(text, maxsplit=1)[0]
    found = [
        candidate
        for candidate in CANDIDATES
        if all(column in _header_fields(header, candidate) for column in wanted)
    ]
    if not found or fallback in found:
        if not found and wanted:
            _refuse_other_delimiter(path, header, fallback, wanted)
        return fallback
    logger.info("%s: delimiter %s (found in the header)", path.name, NAMES.get(found[0], repr(found[0])))
    return found[0]


def _refuse_other_delimiter(path: Path, header: str, fallback: str, wanted: tuple[str, ...]) -> None:
    """A header that ``fallback`` leaves whole but another candidate splits into columns is another
    delimiter with other column names: both are named, instead of a message about commas."""
    if len(_header_fields(header, fallback)) > 1:
        return  # the suffix's delimiter splits it: the columns are named when the wanted ones are missing
    for candidate in CANDIDATES:
        columns = _header_fields(header, candidate)
        if candidate != fallback and len(columns) > 1:
            option = "tab" if candidate == "\t" else repr(candidate)
            found, missing = ", ".join(map(repr, columns)), " and ".join(map(repr, wanted))
            raise FileError(
                f"{path}: the header splits at each {NAMES[candidate]} into the columns {found}, not both "
                f"of {missing}: "
                f"pass --delimiter {option} and name the columns with --text-column and --label-column "
                f"(e.g. --text-column {columns[0]!r} --label-column {columns[-1]!r})"
            )


def _header_fields(header: str, delimiter: str) -> list[str]:
    return [field.strip() for field in next(csv.reader([header], delimiter=delimiter), [])]


def read_rows(
    path: Path,
    suffix_delimiter: str,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    wanted: tuple[str, ...] = (),
) -> list[dict[str, str]]:
    """The data rows as header → cell mappings (blank lines skipped)."""
    text = decode(path, encoding)
    delimiter = delimiter or pick_delimiter(path, text, suffix_delimiter, wanted)
    if len(delimiter) != 1:
        raise FileError(f"--delimiter must be one character, got {delimiter!r}")
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    # strict: a quote that is never closed, or one inside a quoted field that is not doubled, is an error
    # (the lenient default reads the rest of the file into one text, or drops the stray quote).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[dict[str, str]] = []
    header: list[str] = []
    line = 1  # the physical line where the current record starts
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or record == [""]:
                continue
            if not header:
                header = [field.strip() for field in record]
                continue
            if len(record) != len(header):
                raise FileError(_ragged(path, start, len(rows) + 1, record, header, delimiter))
            if reader.line_num > start:
                _refuse_swallowed_rows(path, start, reader.line_num, record, len(header), delimiter)
            rows.append(dict(zip(header, record, strict=True)))
    except csv.Error as error:
        raise FileError(_csv_error(path, line, reader.line_num, error)) from error
    return rows


def _csv_error(path: Path, start: int, end: int, error: csv.Error) -> str:
    """The csv module's complaint about the record that starts on line ``start``, with the fix."""
    fix = 'close it, or double a quote inside a quoted text ("")'
    lines = f"line {start}" if end <= start else f"lines {start}-{end}"
    if str(error) == "unexpected end of data":
        return f"{path} {lines}: the quote opened on line {start} is never closed; {fix}"
    if str(error).endswith("expected after '\"'"):
        return (
            f"{path} {lines}: a quote inside the quoted text that starts on line {start} ends it "
            f"before the line's end or a delimiter ({error}); {fix}"
        )
    return (
        f"{path} line {end}: {error}; a field over {FIELD_LIMIT >> 20} MiB usually means an unbalanced quote "
        f"({fix})"
    )


def _ragged(path: Path, line: int, row: int, record: list[str], header: list[str], delimiter: str) -> str:
    name = NAMES.get(delimiter, repr(delimiter))
    fix = (
        "quote texts that contain commas, or use --format tsv"
        if delimiter == ","
        else f"quote texts that contain a {name}, or pass the file's --delimiter"
    )
    return (
        f"{path} line {line} (data row {row}) has {len(record)} fields but the header has {len(header)} "
        f"({', '.join(header)}), split at each {name}: {fix}"
    )


def _refuse_swallowed_rows(
    path: Path, start: int, end: int, record: list[str], columns: int, delimiter: str
) -> None:
    """A text over several lines is fine, delimiters and quotes in it too. One whose line it opens on and
    every line up to the one it closes on is each a whole row is a quote left open that swallowed the rows
    after it (valid CSV all the same, but far likelier a stray quote than a cell typed that way)."""
    for index, field in enumerate(record):
        lines = LINE_BREAK.split(field)[:-1]  # the last line is where the quote closes
        if not lines:
            continue
        # the physical line the record starts on, as a row: the fields before this one, then its first line
        lines[0] = delimiter.join([*record[:index], lines[0]])
        rows = [piece for piece in lines if piece.strip()]
        # split as they are: a quote inside them is text (strict reading refuses any other quote there)
        if lines[0].strip() and all(len(piece.split(delimiter)) == columns for piece in rows):
            raise FileError(
                f"{path} lines {start}-{end} are one row: the quote opened on line {start} closes only on "
                f"line {end}, taking the rows between into one text; close the quote, or double a quote "
                'inside a quoted text (""); a text whose every line reads as a row is taken for rows: if it '
                "really is one text, write the file as JSON lines"
            )
