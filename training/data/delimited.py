"""A CSV/TSV file's bytes → its rows, strictly: every mistake in the file is refused with its line and the
fix. :func:`training.data.reading.read_labelled` reads data files (any format) and calls this for CSV/TSV.

- The bytes are decoded with the given encoding (default UTF-8, a UTF-8 or UTF-16 byte-order mark is
  honoured); a byte that does not decode is refused with the file, line and byte offset.
- The delimiter is the given one, else the one of ``, ; TAB |`` that splits the header into columns
  that include the text and label columns, else the suffix's (``,`` for CSV, TAB for TSV).
- A row with more or fewer fields than the header is refused: unquoted commas in a text would otherwise
  cut the text at the first comma and turn the fragments into labels.
- A quoted field that spans lines which themselves look like rows is refused as an unbalanced quote:
  it would silently swallow the rows up to the next quote.
- Fields up to :data:`FIELD_LIMIT` characters are read (the csv module's default limit is 128 KiB).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

CANDIDATES = (",", ";", "\t", "|")
FIELD_LIMIT = 16 << 20  # characters per field: a long document, not a whole swallowed file
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


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
    header = text.split("\n", 1)[0]
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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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
        raise FileError(
            f"{path} line {reader.line_num}: {error}; a field over {FIELD_LIMIT >> 20} MiB usually means "
            'an unbalanced quote (close it, or double a quote inside a quoted text: "")'
        ) from error
    return rows


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
    """A text over several lines is fine; one whose inner lines split into a whole row is a quote left
    open that swallowed the rows after it."""
    for field in record:
        inner = field.split("\n")[1:]
        if any(len(_header_fields(piece, delimiter)) == columns for piece in inner if piece.strip()):
            raise FileError(
                f"{path} lines {start}-{end} are one row: the quote opened on line {start} closes only on "
                f"line {end}, taking the rows between into one text; close the quote, or double a quote "
                'inside a quoted text ("")'
            )
