"""Reading a corpus in fixed-size chunks, and writing scored tables, with pyarrow (the ``score`` extra).

Inputs: CSV, TSV, JSON lines and Parquet, chosen by the file's suffix, read a block or a row group at a time
(never the whole file). A chunk is ``rows`` consecutive rows, the same ones on every run of the same
command: that is what lets a run resume. Outputs: Parquet (the model in its key-value metadata), JSON
lines or CSV (the model in a ``.meta.json`` sidecar).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from service.scoring.columns import Unreadable

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
OUTPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".csv": "csv"}
ROW = "row"  # the id column when the input names none: the row's number, from 0
_KINDS = {
    "str": pa.string(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list[str]": pa.list_(pa.string()),
    "list[float]": pa.list_(pa.float64()),
}


class InputError(Exception):
    """The input cannot be scored as asked; the message says how to fix the command."""


@dataclass(frozen=True)
class Chunk:
    """Rows ``start`` to ``start + len(texts)`` of the input: the text values as read (str, bytes,
    anything for JSON lines) and the columns passed through (the id first)."""

    index: int
    start: int
    texts: list[object]
    passthrough: pa.Table


def format_of(path: Path, formats: dict[str, str], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise InputError(
            f"{what} {path}: unknown format {suffix or '(no suffix)'!r}; use one of {', '.join(formats)}"
        )
    return formats[suffix]


class Corpus:
    """One input file: its columns are checked on opening, its chunks read on demand."""

    def __init__(
        self, path: Path, text_column: str | None, id_column: str | None, keep: Sequence[str]
    ) -> None:
        self.path = path
        if not path.is_file():
            raise InputError(f"input {path}: no such file")
        self.format = format_of(path, INPUT_FORMATS, "input")
        self.columns, self.rows = self._schema()
        self.text_column = self._text_column(text_column)
        for column in [c for c in (id_column, *keep) if c is not None]:
            if column not in self.columns:
                raise InputError(
                    f"input {path} has no column {column!r}; its columns: {', '.join(self.columns)}"
                )
        self.id_column = id_column
        self.keep = [column for column in keep if column != id_column]

    def _schema(self) -> tuple[list[str], int | None]:
        try:
            if self.format == "parquet":
                parquet = pq.ParquetFile(self.path)
                schema = parquet.schema_arrow
                self._parquet_types = {field.name: field.type for field in schema}
                return list(schema.names), parquet.metadata.num_rows
            if self.format == "jsonl":
                with self.path.open("rb") as handle:
                    for line in handle:
                        if line.strip():
                            first = json.loads(line)
                            if not isinstance(first, dict):
                                raise InputError(f"input {self.path}: the first line is not a JSON object")
                            return list(first), None
                raise InputError(f"input {self.path} is empty")
            reader = pa_csv.open_csv(
                self.path, parse_options=self._csv_parse(), read_options=self._csv_read()
            )
            return list(reader.schema.names), None
        except (pa.ArrowInvalid, OSError, ValueError) as error:
            raise InputError(f"input {self.path} cannot be read as {self.format}: {error}") from None

    def _text_column(self, wanted: str | None) -> str:
        if wanted is not None:
            if wanted not in self.columns:
                raise InputError(
                    f"input {self.path} has no column {wanted!r}; its columns: {', '.join(self.columns)}"
                )
            column = wanted
        elif "text" in self.columns:
            column = "text"
        else:
            raise InputError(
                f"input {self.path} has no column 'text'; name the text column with --text-column "
                f"(its columns: {', '.join(self.columns)})"
            )
        if self.format == "parquet":
            kind = self._parquet_types[column]
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)):
                raise InputError(f"input {self.path}: column {column!r} holds {kind}, not text")
        return column

    def _csv_parse(self) -> pa_csv.ParseOptions:
        return pa_csv.ParseOptions(delimiter="\t" if self.format == "tsv" else ",", newlines_in_values=True)

    def _csv_read(self) -> pa_csv.ReadOptions:
        return pa_csv.ReadOptions(block_size=1 << 20)

    # -- chunks ------------------------------------------------------------------------------------------

    def chunks(self, rows: int) -> Iterator[Chunk]:
        """Chunks of ``rows`` rows (the last may be shorter), in order."""
        index, start = 0, 0
        texts: list[object] = []
        kept: list[pa.Table] = []
        for batch_texts, batch_kept in self._batches(rows):
            texts += batch_texts
            kept.append(batch_kept)
            while len(texts) >= rows:
                passthrough = pa.concat_tables(kept)
                yield self._chunk(index, start, texts[:rows], passthrough.slice(0, rows))
                texts, kept = texts[rows:], [passthrough.slice(rows)]
                index, start = index + 1, start + rows
        if texts:
            yield self._chunk(index, start, texts, pa.concat_tables(kept))

    def _chunk(self, index: int, start: int, texts: list[object], passthrough: pa.Table) -> Chunk:
        if self.id_column is None:
            numbers = pa.array(range(start, start + len(texts)), pa.int64())
            if passthrough.num_columns == 0:  # a table without columns has no rows either
                passthrough = pa.table({ROW: numbers})
            else:
                passthrough = passthrough.add_column(0, ROW, numbers)
        return Chunk(index, start, texts, passthrough.combine_chunks())

    def _wanted(self) -> list[str]:
        return [c for c in (self.id_column, *self.keep) if c is not None]

    def _batches(self, rows: int) -> Iterator[tuple[list[object], pa.Table]]:
        wanted = self._wanted()
        if self.format == "jsonl":
            yield from self._json_batches(rows, wanted)
            return
        if self.format == "parquet":
            columns = list(dict.fromkeys([self.text_column, *wanted]))
            batches: Iterator[pa.RecordBatch] = pq.ParquetFile(self.path).iter_batches(rows, columns=columns)
        else:
            types = {name: pa.string() for name in self.columns}
            types[self.text_column] = pa.binary()  # bytes: a row that is not UTF-8 is rejected, not fatal
            convert = pa_csv.ConvertOptions(
                column_types=types, include_columns=list(dict.fromkeys([self.text_column, *wanted]))
            )
            batches = iter(
                pa_csv.open_csv(
                    self.path,
                    read_options=self._csv_read(),
                    parse_options=self._csv_parse(),
                    convert_options=convert,
                )
            )
        for batch in batches:
            table = pa.Table.from_batches([batch])
            yield table.column(self.text_column).to_pylist(), table.select(wanted)

    def _json_batches(self, rows: int, wanted: list[str]) -> Iterator[tuple[list[object], pa.Table]]:
        texts: list[object] = []
        records: list[dict[str, Any]] = []
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as error:
                    texts.append(Unreadable(f"line {number} is not JSON ({error})"))
                    records.append({})
                else:
                    if not isinstance(record, dict):
                        record = {}
                    texts.append(record.get(self.text_column))
                    records.append(record)
                if len(texts) == rows:
                    yield texts, _records_table(records, wanted)
                    texts, records = [], []
        if texts:
            yield texts, _records_table(records, wanted)


def _records_table(records: list[dict[str, Any]], wanted: list[str]) -> pa.Table:
    return pa.table({column: pa.array([record.get(column) for record in records]) for column in wanted})


def answers_table(
    passthrough: pa.Table, answers: dict[str, list[Any]], kinds: list[tuple[str, str]]
) -> pa.Table:
    """The passed-through columns, then the answer columns (of :func:`output_columns`) with their types."""
    table = passthrough
    for name, kind in kinds:
        table = table.append_column(
            name, pa.array(answers[name], _KINDS[kind], from_pandas=True)
        )  # NaN: null
    return table


# -- writing ------------------------------------------------------------------------------------------------


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, flush it to disk, then rename it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class OutputWriter:
    """Tables appended one after another into one file of the output's format, under a temporary name
    until :meth:`commit` renames it into place."""

    def __init__(self, path: Path, schema: pa.Schema, metadata: dict[str, str]) -> None:
        self.path = path
        self.format = format_of(path, OUTPUT_FORMATS, "output")
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.schema = schema
        self.metadata = metadata
        self._handle = self.temporary.open("wb")
        self._writer: Any = None
        if self.format == "parquet":
            self._writer = pq.ParquetWriter(self._handle, schema.with_metadata(metadata))
        elif self.format == "csv":
            self._writer = pa_csv.CSVWriter(self._handle, _csv_schema(schema))

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema)
        if self.format == "parquet":
            self._writer.write_table(table)
        elif self.format == "csv":
            self._writer.write_table(_csv_table(table))
        else:
            self._handle.write(b"".join(orjson.dumps(row) + b"\n" for row in table.to_pylist()))

    def commit(self) -> None:
        if self.format != "parquet" and self.metadata:  # the model beside the file: a sidecar
            sidecar = self.path.with_name(self.path.name + ".meta.json")
            sidecar.write_text(json.dumps(self.metadata, indent=1) + "\n")
        if self._writer is not None:
            self._writer.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temporary, self.path)

    def abandon(self) -> None:
        self._handle.close()
        self.temporary.unlink(missing_ok=True)


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_list(f.type) else f for f in schema])


def _csv_table(table: pa.Table) -> pa.Table:
    """CSV has no lists: a list column is written as its JSON text."""
    for index, field in enumerate(table.schema):
        if pa.types.is_list(field.type):
            values = [None if v is None else json.dumps(v) for v in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(values, pa.string()))
    return table
