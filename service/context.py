"""Per-request values the middleware sets and deeper code reads (logging, inference deadlines)."""

from __future__ import annotations

import time
from contextvars import ContextVar

# "-" outside a request (start-up, shutdown), so log lines always have the field.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
# time.monotonic() by which the request must be answered; None outside a request.
DEADLINE: ContextVar[float | None] = ContextVar("deadline", default=None)


def seconds_left() -> float | None:
    """Seconds until the current request's deadline (may be <= 0), or None without a deadline."""
    deadline = DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()
