"""Per-request values the middleware sets and deeper code reads (logging, inference deadlines, timings)."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.observability.tracing import RequestTrace

# "-" outside a request (start-up, shutdown), so log lines always have the field.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
# time.monotonic() by which the request must be answered; None outside a request.
DEADLINE: ContextVar[float | None] = ContextVar("deadline", default=None)


@dataclass(slots=True)
class RequestRecord:
    """What one request did, filled in as it runs; the middleware turns it into headers, a log line and
    metrics. Mutated in place (also from inference threads), so every copy of the context sees one record."""

    route: str | None = None  # the route template a hot route answered (FastAPI routes: scope["route"])
    model: str | None = None
    version: int | None = None
    alias: str | None = None  # the alias that chose the version (a canary split or a named alias)
    routing_key: str | None = None  # the caller's X-Routing-Key: the canary split's key
    queue_seconds: float | None = None  # waiting for a model call (pool thread or batch) to start
    inference_seconds: float | None = None  # model calls themselves (and tokenizing long texts)
    trace: RequestTrace | None = None  # with tracing on (service.observability.tracing)

    def add_model_time(self, queue_seconds: float, inference_seconds: float) -> None:
        self.queue_seconds = (self.queue_seconds or 0.0) + max(0.0, queue_seconds)
        self.inference_seconds = (self.inference_seconds or 0.0) + max(0.0, inference_seconds)


RECORD: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


def seconds_left() -> float | None:
    """Seconds until the current request's deadline (may be <= 0), or None without a deadline."""
    deadline = DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def current_trace() -> RequestTrace | None:
    """The current request's trace if it is recorded; None otherwise (tracing off, unsampled, no request)."""
    record = RECORD.get()
    if record is None:
        return None
    trace = record.trace
    return trace if trace is not None and trace.recording else None


def note_route(template: str) -> None:
    """Record the route template that answers the current request (no-op outside a request)."""
    record = RECORD.get()
    if record is not None:
        record.route = template


def note_model(name: str, version: int, alias: str | None = None) -> None:
    """Record which model version (and alias) answers the current request (no-op outside a request)."""
    record = RECORD.get()
    if record is not None:
        record.model, record.version, record.alias = name, version, alias


def routing_key() -> str | None:
    """The caller's key for the canary split (None: the texts are the key)."""
    record = RECORD.get()
    return None if record is None else record.routing_key


def current_alias() -> str | None:
    record = RECORD.get()
    return None if record is None else record.alias
