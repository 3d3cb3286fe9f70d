"""The JSON-lines sink, for log shippers: ``predictions-<time>-<pid>.jsonl`` files in one folder, a new
file past ``ROTATE_BYTES``; pruning removes whole files by age or beyond the newest ``max_rows`` lines'
worth (counted per file)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from service.predictions.records import COLUMNS

ROTATE_BYTES = 64 << 20


class JsonlSink:
    def __init__(self, url: str, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.folder = Path(url[len("jsonl://") :])
        self.rotate_bytes = rotate_bytes
        self._file: IO[bytes] | None = None
        self._lines: dict[Path, int] = {}
        self._sequence = 0  # files this process opened: names sort in the order written

    def _current(self) -> IO[bytes]:
        if self._file is not None and self._file.tell() >= self.rotate_bytes:
            self._file.close()
            self._file = None
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._sequence += 1
            path = self.folder / f"predictions-{stamp}-{os.getpid()}-{self._sequence:06d}.jsonl"
            self._file = path.open("ab")
            self._lines[path] = 0
        return self._file

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        file = self._current()
        file.write(b"".join(orjson.dumps(_record(row)) + b"\n" for row in rows))
        file.flush()
        self._lines[Path(file.name)] = self._lines.get(Path(file.name), 0) + len(rows)

    def prune(self, older_than_seconds: float, max_rows: int) -> int:
        files = sorted(
            self.folder.glob("predictions-*.jsonl"), key=lambda path: path.stat().st_mtime, reverse=True
        )
        current = Path(self._file.name) if self._file is not None else None
        kept_rows, removed = 0, 0
        for path in files:
            too_old = older_than_seconds > 0 and path.stat().st_mtime < time.time() - older_than_seconds
            too_many = max_rows > 0 and kept_rows >= max_rows
            if path != current and (too_old or too_many):
                path.unlink(missing_ok=True)
                removed += self._lines.pop(path, 0)
            else:
                kept_rows += self._lines.get(path) or _count_lines(path)
        return removed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(COLUMNS, row, strict=True))
    record["scores"], record["labels"] = orjson.loads(record["scores"]), orjson.loads(record["labels"])
    return record


def _count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)
