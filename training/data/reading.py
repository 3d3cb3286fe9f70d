"""Reading a labelled data file (CSV, TSV or JSONL) into examples: :func:`read_labelled` is the one entry.

Single-label data has one label per text; multi-label data a set per text (``a|b`` in a CSV/TSV cell,
a list in JSONL; an empty cell or list means all-negative). The task is given or inferred from the cells.
JSONL lines are parsed here; CSV/TSV bytes become rows in :mod:`training.data.delimited`; the built-in data
sets are :mod:`training.data.builtin`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data import delimited, multilabel

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl")
# A label with fewer examples than this is warned about: the split may leave it out of dev and test, and
# the model sees too few to learn it.
FEW_EXAMPLES = 5
# A larger share of rows skipped for an empty text or label is warned about (usually a wrong column).
SKIPPED_SHARE_WARNING = 0.05


class DataError(ValueError):
    """Input data that cannot be used; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Example:
    """``label`` for single-label data; ``labels`` (possibly empty) for multi-label data, ``label`` ""."""

    text: str
    label: str = ""
    labels: tuple[str, ...] = ()


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("json", "jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("tsv", "tab"):
        return "tsv"
    if suffix == "csv":
        return "csv"
    raise DataError(f"cannot tell the format of {path} from its suffix; pass --format {'|'.join(FORMATS)}")


def read_file(
    path: Path,
    text_column: str = "text",
    label_column: str = "label",
    fmt: str | None = None,
    task: str | None = None,
    separator: str = multilabel.DEFAULT_SEPARATOR,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> list[Example]:
    """Read a CSV/TSV (with a header row) or JSONL file (see :func:`read_labelled`)."""
    return read_labelled(
        path, text_column, label_column, fmt, task, separator, delimiter=delimiter, encoding=encoding
    )[0]


def read_labelled(
    path: Path,
    text_column: str = "text",
    label_column: str = "label",
    fmt: str | None = None,
    task: str | None = None,
    separator: str = multilabel.DEFAULT_SEPARATOR,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> tuple[list[Example], str]:
    """The file's examples and its task (``task``, or inferred: multi-label when a label cell holds a list
    or ``separator``). Rows with an empty text are skipped; so are rows with an empty label for
    single-label data, while for multi-label data an empty label set is an all-negative example.

    CSV/TSV files are read by :mod:`training.data.delimited` (``delimiter``: None finds it in the header);
    ``encoding`` None reads UTF-8 (or UTF-16 with a byte-order mark)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    try:
        if fmt == "jsonl":
            rows = _read_jsonl(path, encoding)
        else:
            rows = delimited.read_rows(
                path,
                "\t" if fmt == "tsv" else ",",
                delimiter=delimiter,
                encoding=encoding,
                wanted=(text_column, label_column),
            )
    except delimited.FileError as error:
        raise DataError(str(error)) from error
    cells = []
    for number, row in enumerate(rows, start=1):
        if text_column not in row or label_column not in row:
            columns = ", ".join(repr(str(key)) for key in row)
            raise DataError(
                f"{path} row {number} lacks {text_column!r} or {label_column!r} (it has {columns}); "
                "set --text-column / --label-column"
                + ("" if fmt == "jsonl" else ", or --delimiter if the header is not split at the right place")
            )
        text = "" if row[text_column] is None else str(row[text_column]).strip()
        cells.append((text, row[label_column]))
    task = task or _infer_task(path, [cell for _, cell in cells], separator)
    _report_stripped_labels(path, [cell for _, cell in cells], separator if task == "multi-label" else "")
    examples, skipped = [], 0
    for text, cell in cells:
        if task == "multi-label":
            if text:
                examples.append(Example(text, labels=multilabel.parse_label_set(cell, separator)))
            else:
                skipped += 1
            continue
        label = "" if cell is None else str(cell).strip()
        if not text or not label:
            skipped += 1
            continue
        examples.append(Example(text, label))
    if not examples:
        raise DataError(
            f"{path} holds no usable rows (all {len(cells)} have an empty text{_or_label(task)}); "
            "check --text-column / --label-column"
        )
    _report_skipped(path, skipped, len(cells), task)
    _warn_rare_labels(path, examples, task)
    return examples, task


def _report_stripped_labels(path: Path, cells: list[Any], separator: str) -> None:
    """Spaces around a label are dropped ('billing ' is 'billing'): said, with how many cells had them."""
    padded: dict[str, int] = {}
    for cell in cells:
        items = cell if isinstance(cell, list) else str(cell or "").split(separator) if separator else [cell]
        for item in items:
            text = "" if item is None else str(item)
            if text.strip() and text != text.strip():
                padded[text] = padded.get(text, 0) + 1
    if padded:
        logger.info(
            "%s: spaces around labels dropped in %d cell(s) (%s), so they are served without them",
            path,
            sum(padded.values()),
            ", ".join(f"{raw!r} → {raw.strip()!r}" for raw in list(padded)[:5]),
        )


def _report_skipped(path: Path, skipped: int, rows: int, task: str) -> None:
    if not skipped:
        return
    share = skipped / rows
    level = logging.WARNING if share > SKIPPED_SHARE_WARNING else logging.INFO
    logger.log(
        level,
        "%s: skipped %d of %d rows (%.0f%%) with an empty text%s%s",
        path,
        skipped,
        rows,
        100 * share,
        _or_label(task),
        "; check that --text-column / --label-column name the right columns"
        if level == logging.WARNING
        else "",
    )


def _warn_rare_labels(path: Path, examples: list[Example], task: str) -> None:
    counts: dict[str, int] = {}
    for example in examples:
        for label in example.labels if task == "multi-label" else (example.label,):
            counts[label] = counts.get(label, 0) + 1
    rare = {label: count for label, count in sorted(counts.items()) if count < FEW_EXAMPLES}
    if rare:
        shown = ", ".join(f"{label!r}: {count}" for label, count in list(rare.items())[:10])
        logger.warning(
            "%s: %d label(s) have fewer than %d examples (%s%s): too few to learn, and the split may "
            "leave them out of dev and test; add examples, or merge or drop those labels",
            path,
            len(rare),
            FEW_EXAMPLES,
            shown,
            ", ..." if len(rare) > 10 else "",
        )


def _or_label(task: str) -> str:
    return "" if task == "multi-label" else " or label"


def _infer_task(path: Path, cells: list[Any], separator: str) -> str:
    several = sum(
        1
        for cell in cells
        if isinstance(cell, list) or (isinstance(cell, str) and separator and separator in cell)
    )
    task = "multi-label" if several else "single-label"
    logger.info(
        "task %s (inferred from %s: %d label cells hold a list or %r)",
        task,
        Path(path).name,
        several,
        separator,
    )
    return task


def _read_jsonl(path: Path, encoding: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(delimited.decode(path, encoding).split("\n"), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(f"{path} line {number} is not JSON: {error}") from error
            if not isinstance(row, dict):
                raise DataError(f"{path} line {number} must be a JSON object")
            rows.append(row)
    return rows
