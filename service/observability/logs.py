"""Logging set-up: text or JSON lines, every record carrying the request id of the request it belongs to.

:func:`logging_config` returns a ``logging.config.dictConfig`` dictionary; the CLI hands it to uvicorn
(``log_config``) so every worker process configures itself the same way.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import datetime
from typing import IO, Any

import orjson

from service.observability.context import REQUEST_ID

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and goes into JSON lines.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's coloured duplicate of the message
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


# The last second formatted: (whole seconds, "2026-11-30T13:20:01", "+00:00"). Under load every line of a
# second shares it; building it costs a time-zone lookup, a tenth of the access line's cost.
_SECOND: tuple[int, str, str] = (-1, "", "")


def iso_time(record: logging.LogRecord) -> str:
    """ISO 8601 local time with milliseconds and the UTC offset: ``2026-11-30T13:20:01.123+00:00``."""
    global _SECOND
    second = int(record.created)
    cached = _SECOND
    if cached[0] != second:
        local = datetime.fromtimestamp(second).astimezone()
        cached = _SECOND = (second, local.strftime("%Y-%m-%dT%H:%M:%S"), local.isoformat()[19:])
    milliseconds = min(999, int((record.created - second) * 1000))
    return f"{cached[1]}.{milliseconds:03d}{cached[2]}"


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` with ISO 8601 times (the default ``asctime`` has no time zone)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return iso_time(record)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, and the trace if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": iso_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        line.update((key, value) for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class BufferedStreamHandler(logging.StreamHandler[IO[str]]):
    """A stream handler that writes its lines in bulk, at most ``interval`` seconds after they were logged.

    For the access log: one write and flush per request was a tenth of the event loop's time at C=64
    (py-spy). Lines are formatted when logged (in the request's context) and kept; they are written
    together when ``capacity`` lines wait, else by a daemon thread ``interval`` seconds after the first of
    them (so the last lines come out when traffic stops); :func:`logging.shutdown` and ``flush()`` write
    whatever waits.
    """

    def __init__(self, stream: IO[str] | None = None, capacity: int = 256, interval: float = 0.1) -> None:
        super().__init__(sys.stderr if stream is None else stream)
        self.capacity, self.interval = capacity, interval
        self._lines: list[str] = []
        self._waiting = threading.Event()  # set when the first line of a bulk is kept
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            if len(self._lines) >= self.capacity:
                self._write()
            elif len(self._lines) == 1:
                if self._writer is None or not self._writer.is_alive():  # started lazily (and after a fork)
                    self._writer = threading.Thread(target=self._write_later, name="log-writer", daemon=True)
                    self._writer.start()
                self._waiting.set()

    def _write_later(self) -> None:
        while True:
            self._waiting.wait()
            time.sleep(self.interval)
            self._waiting.clear()
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:  # with the lock held
        if not self._lines:
            return
        text = self.terminator.join(self._lines) + self.terminator
        self._lines.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed or broken stream must not fail the request that logged
            pass


def logging_config(level: str = "info", log_format: str = "text") -> dict[str, Any]:
    """The ``dictConfig`` of the service's logging. Also stops every record from looking up its thread and
    process names and ids, which no line prints: half of a record's cost (1.2 of 2.5 µs), paid once per
    request for the access line."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    formatter: dict[str, Any] = (
        {"()": "service.observability.logs.JsonFormatter"}
        if log_format == "json"
        else {"()": "service.observability.logs.TextFormatter", "format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "level": level.upper(),  # also for library loggers that set a lower level of their own
        "stream": "ext://sys.stderr",
        "formatter": "default",
        "filters": ["request_id"],
    }
    access = {
        **handler,
        "class": "service.observability.logs.BufferedStreamHandler",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "service.observability.logs.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler, "access": access},
        "root": {"handlers": ["default"], "level": level.upper()},
        # uvicorn's own loggers propagate to the root; its access log is replaced by ours (service.access).
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            # One line per request, written in bulk (BufferedStreamHandler); not through the root's handler.
            "service.access": {"handlers": ["access"], "propagate": False},
        },
    }
