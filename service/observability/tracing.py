"""What a traced request records as it runs: plain timestamps and ids, no OpenTelemetry objects (stdlib only).

With ``LSTM_SERVICE_TRACING=true`` the front layer gives each request a :class:`RequestTrace` (on its
:class:`service.observability.context.RequestRecord`); the engine and the hot routes add the request's
steps to it (:func:`service.observability.context.current_trace`, :meth:`RequestTrace.child`). The spans
themselves are made later, on the export thread (:mod:`service.observability.tracing_export`): on the
request path a step costs two clock reads and a tuple. With tracing off the record has no trace, and every
hook is one context-variable read.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

Attributes = Mapping[str, Any] | None


class SpanRef:
    """A span another span links to (a batch span, a request span): its trace and span ids."""

    __slots__ = ("trace_id", "span_id")

    def __init__(self, trace_id: int, span_id: int) -> None:
        self.trace_id, self.span_id = trace_id, span_id


class RequestTrace:
    """One request's trace: its ids, the caller's span (W3C ``traceparent``), and the steps it went through.

    ``recording`` is the sampler's decision: a request that is not recorded still has a trace id (returned
    in ``traceresponse`` and written in the access log line, so that logs and the caller's trace join) but
    records nothing. ``children`` are ``(name, start_ns, end_ns, attributes, links)``; ``batches`` the batch
    spans that ran the request's texts (noted by the batcher's hook, see ``Tracing.batch``).
    """

    __slots__ = (
        "trace_id",
        "span_id",
        "parent_span_id",
        "parent_sampled",
        "trace_state",
        "recording",
        "start_ns",
        "end_ns",
        "children",
        "batches",
        "results_ns",
        "request",
    )

    def __init__(
        self,
        trace_id: int,
        parent_span_id: int | None,
        parent_sampled: bool,
        trace_state: Any,
        recording: bool,
        start_ns: int,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = new_span_id()
        self.parent_span_id = parent_span_id  # None: the request span is a root
        self.parent_sampled = parent_sampled
        self.trace_state = trace_state  # the SDK's TraceState (the caller's ``tracestate``), or None
        self.recording = recording
        self.start_ns = start_ns
        self.end_ns = 0
        self.children: list[tuple[str, int, int, Attributes, Sequence[SpanRef]]] = []
        self.batches: list[tuple[SpanRef, int]] = []  # (batch span, its start in ns)
        self.results_ns = 0  # when the model's results were back: the answer's encoding starts there
        self.request: tuple[Any, ...] = ()  # what the request span says, filled in when it ends

    @property
    def trace_id_hex(self) -> str:
        return f"{self.trace_id:032x}"

    def traceresponse(self) -> bytes:
        """The ``traceresponse`` header (W3C Trace Context level 2): this request's trace and span."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.recording else '00'}".encode()

    def child(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Attributes = None,
        links: Sequence[SpanRef] = (),
    ) -> None:
        """A step of the request (a child of its span), timed by the caller with ``time.time_ns()``."""
        self.children.append((name, start_ns, end_ns, attributes, links))


def new_span_id() -> int:
    return random.getrandbits(64) or 1  # the all-zero id is invalid


def new_trace_id() -> int:
    return random.getrandbits(128) or 1
