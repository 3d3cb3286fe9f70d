"""Logging set-up: text or JSON lines, every record carrying the request id of the request it belongs to.

:func:`logging_config` returns a ``logging.config.dictConfig`` dictionary; the CLI hands it to uvicorn
(``log_config``) so every worker process configures itself the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

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


def iso_time(record: logging.LogRecord) -> str:
    """ISO 8601 local time with milliseconds and the UTC offset: ``2026-11-30T13:20:01.123+00:00``."""
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


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


def logging_config(level: str = "info", log_format: str = "text") -> dict[str, Any]:
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
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "service.observability.logs.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        # uvicorn's own loggers propagate to the root; its access log is replaced by ours (service.access).
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
