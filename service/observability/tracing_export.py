"""OpenTelemetry for ``LSTM_SERVICE_TRACING=true``: W3C context in, sampling, spans out over OTLP (the SDK's).

:func:`start` builds one :class:`Tracing` per server process (each worker its own, with its own
``service.instance.id``) from the standard ``OTEL_*`` variables: service name and resource attributes
(read by the SDK), sampler (``OTEL_TRACES_SAMPLER``, ``..._ARG``), exporter (``OTEL_TRACES_EXPORTER``:
``otlp``, ``console`` or ``none``), protocol (``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``: ``http/protobuf``
or ``grpc``), endpoint, headers, timeout and compression (read by the SDK's exporters), and the batch span
processor's ``OTEL_BSP_*``. A value it cannot follow stops the start with :class:`TracingConfigError`.

Cost is kept off the request path. A request keeps timestamps in its
:class:`~service.observability.tracing.RequestTrace`; when it ends, the whole trace (request span and
children) goes into the SDK's ``BatchSpanProcessor`` as one item, and the processor's export thread turns
it into SDK spans (``ReadableSpan``) just before the exporter encodes them (:class:`_SpanMaker`). Going
through the SDK's ``Tracer`` cost about 60 µs per span on this machine against 8 µs for a ``ReadableSpan``
made directly, and the request path makes neither. The sampler's decision and the ``traceparent`` are
read with a few integer operations (:class:`Sampling`, :func:`parse_traceparent`, checked against the SDK's
own in the tests).

A collector that is down or slow never holds a request, nor costs it more than a sampling decision:
requests are recorded only while the collector answers. A failed export stops the recording and sends a
watcher thread probing the collector with empty exports (2 s apart, doubling to 60 s) until one succeeds;
what was queued meanwhile is discarded without being made into spans; an export under way for more than
2 s stops the recording too; the queue is bounded (``OTEL_BSP_MAX_QUEUE_SIZE`` items, dropped past it).
A warning says so at most once a minute.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from service import __version__
from service.observability.context import RequestRecord
from service.observability.tracing import RequestTrace, SpanRef, new_span_id, new_trace_id

logger = logging.getLogger(__name__)

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
# Probes and scrapes come every few seconds and say nothing about requests: they get no trace.
UNTRACED_PATHS = frozenset(
    {"/livez", "/readyz", "/health", "/metrics", "/v2/health/live", "/v2/health/ready"}
)
# W3C Trace Context, as the SDK's propagator reads it (a later version may append fields; 00 may not).
_TRACEPARENT = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$"
)
_TRACEPARENT_MAX_CHARS = 512
_TRACESTATE_MAX_CHARS = 512
_TRACE_ID_LOW_BITS = (1 << 64) - 1
_DROP_WARNING_SECONDS = 60.0
_MIN_BACKOFF_SECONDS, _MAX_BACKOFF_SECONDS = 2.0, 60.0
_STALLED_SECONDS = 2.0
_FIRST_PROBE_SECONDS = 0.5  # how long the start waits to know whether the collector answers
_SHUTDOWN_SECONDS = 3.0  # at exit, how long the last spans may take to leave (a daemon thread after that)


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable names something this service cannot do; the message says what to set."""


class _Pending:
    """One queue item: a finished request's trace, or a batch span. The processor reads ``context`` only to
    see that the item is sampled (nothing unsampled is queued)."""

    __slots__ = ("trace", "batch")
    context = SpanContext(1, 1, False, SAMPLED)

    def __init__(self, trace: RequestTrace | None, batch: tuple[Any, ...] | None) -> None:
        self.trace, self.batch = trace, batch


class Tracing:
    """One process's tracing: :meth:`begin` and :meth:`end` around each request (the front layer),
    :meth:`batch` after each micro-batch (the engine's batch hook)."""

    def __init__(
        self, sampler: Sampling, processor: BatchSpanProcessor, maker: _SpanMaker, limit: int
    ) -> None:
        self.sampler = sampler
        self.processor = processor
        self.maker = maker
        self.limit = limit  # items the processor's queue holds
        self.queued = 0  # items handed to the processor (the maker counts those taken off)
        self.dropped = 0
        self._dropped_since_warning = 0
        self._warned_at = -_DROP_WARNING_SECONDS

    def begin(self, scope: Mapping[str, Any]) -> RequestTrace | None:
        """The request's trace, continuing the caller's ``traceparent``/``tracestate``; None for probes."""
        if scope["path"] in UNTRACED_PATHS:
            return None
        start_ns = time.time_ns()
        traceparent = tracestate = None
        for key, value in scope["headers"]:
            name = key.lower()
            if name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value if tracestate is None else tracestate + b"," + value
        parent = None if traceparent is None else parse_traceparent(traceparent.decode("latin-1"))
        state: str | None = None
        if parent is None:
            trace_id, parent_span_id, parent_sampled = new_trace_id(), None, None
        else:
            trace_id, parent_span_id, parent_sampled = parent
            if tracestate is not None and len(tracestate) <= _TRACESTATE_MAX_CHARS:
                state = tracestate.decode("latin-1")  # parsed on the export thread
        recording = self.sampler.sampled(trace_id, parent_sampled) and self._has_room()
        return RequestTrace(trace_id, parent_span_id, bool(parent_sampled), state, recording, start_ns)

    def end(
        self, record: RequestRecord, scope: Mapping[str, Any], route: str, status: int, request_id: str
    ) -> None:
        """Queue the request's trace for export (after its answer was sent)."""
        trace = record.trace
        if trace is None or not trace.recording:
            return
        trace.end_ns = time.time_ns()
        trace.request = (scope, route, status, request_id, record.model, record.version)
        self._queue(_Pending(trace, None))

    def batch(self, model: str, version: int, stats: Any) -> None:
        """A batch span for a micro-batch that ran texts of recorded requests, linked to each of them."""
        traces = [
            record.trace
            for record in stats.served
            if isinstance(record, RequestRecord) and record.trace is not None and record.trace.recording
        ]
        if not traces:
            return
        reference = SpanRef(new_trace_id(), new_span_id())
        for trace in traces:
            trace.batches.append((reference, stats.started_ns))
        links = [SpanRef(trace.trace_id, trace.span_id) for trace in traces]
        end_ns = stats.started_ns + int(stats.run_seconds * 1e9)
        self._queue(_Pending(None, (reference, model, version, stats, links, end_ns)))

    def _has_room(self) -> bool:
        """Whether a sampled request can be recorded: the queue has room, and the last export did not fail
        within its back-off (while the collector is down, requests record nothing at all)."""
        if self.queued - self.maker.taken < self.limit and self.maker.healthy(time.monotonic()):
            return True
        self._dropped(1)
        return False

    def _queue(self, item: _Pending) -> None:
        if self.queued - self.maker.taken >= self.limit:  # the bounded queue: drop, never wait
            self._dropped(1)
            return
        self.queued += 1
        self.processor.on_end(item)  # type: ignore[arg-type]  # expanded into spans by _SpanMaker

    def _dropped(self, count: int) -> None:
        self.dropped += count
        self._dropped_since_warning += count
        now = time.monotonic()
        if now - self._warned_at >= _DROP_WARNING_SECONDS:
            logger.warning(
                "tracing: the collector at %s is down or too slow (the span queue holds %d items, "
                "OTEL_BSP_MAX_QUEUE_SIZE); %d traces dropped since the last warning",
                self.maker.endpoint,
                self.limit,
                self._dropped_since_warning,
            )
            self._warned_at, self._dropped_since_warning = now, 0

    def shutdown(self, timeout: float = _SHUTDOWN_SECONDS) -> None:
        """Send what is queued, for at most ``timeout`` seconds (a collector that is down cannot hold the
        process up: the processor's thread is a daemon)."""
        closing = threading.Thread(target=self.processor.shutdown, name="tracing-shutdown", daemon=True)
        closing.start()
        closing.join(timeout)


class _SpanMaker(SpanExporter):
    """The exporter the processor calls, on its thread: queue items become SDK spans for the real exporter."""

    def __init__(self, exporter: SpanExporter, resource: Resource, endpoint: str) -> None:
        self.exporter = exporter
        self.resource = resource
        self.endpoint = endpoint
        self.scope = InstrumentationScope("lstm-service", __version__)
        self.taken = 0  # items taken off the processor's queue
        self.skipped = 0  # items discarded while the collector was not answering
        # Requests are recorded only while the collector answers. Once an export fails, a watcher thread
        # probes it with empty exports, 2 s apart doubling to 60 s, and recording resumes when one succeeds.
        self.connected = False
        self.backoff = 0.0
        self.sending_since = 0.0  # time.monotonic() when the export in progress began; 0: none
        self.first_probe = threading.Event()
        self._lost = threading.Event()
        self._lost.set()  # not known to answer yet: the watcher probes at once
        self._closing = threading.Event()
        self._lock = threading.Lock()  # one export at a time: the processor's thread, the watcher's
        threading.Thread(target=self._watch, name="tracing-probe", daemon=True).start()

    def healthy(self, now: float) -> bool:
        """Whether requests should be recorded: the collector answered the last export, and no export has
        been under way for more than a few seconds (the exporter's own retries of a collector that stopped
        answering last up to OTEL_EXPORTER_OTLP_TIMEOUT)."""
        since = self.sending_since
        return self.connected and not (since and now - since > _STALLED_SECONDS)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.taken += len(spans)
        if not self.connected:  # queued before the collector stopped answering: not even made into spans
            self.skipped += len(spans)
            return SpanExportResult.FAILURE
        made: list[ReadableSpan] = []
        for item in spans:
            if item.trace is not None:
                self._request_spans(item.trace, made)
            else:
                made.append(self._batch_span(*item.batch))
        result = self._send(made)
        if result is not SpanExportResult.SUCCESS:
            self.connected = False
            self._lost.set()
        return result

    def _send(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.sending_since = time.monotonic()
            try:
                return self.exporter.export(spans)
            except Exception:  # an exporter that raises is a collector that did not take the spans
                logger.exception("tracing: the exporter failed")
                return SpanExportResult.FAILURE
            finally:
                self.sending_since = 0.0

    def _watch(self) -> None:
        """Probe a collector that is not known to answer (at start, after a failed export) until it does."""
        while not self._closing.is_set():
            self._lost.wait()
            if self._closing.wait(self.backoff):
                return
            if self._send([]) is SpanExportResult.SUCCESS:
                self.backoff = 0.0
                self._lost.clear()
                self.connected = True
            else:
                self.backoff = min(_MAX_BACKOFF_SECONDS, max(_MIN_BACKOFF_SECONDS, 2 * self.backoff))
            self.first_probe.set()

    def _span(
        self, name: str, context: SpanContext, parent: SpanContext | None, **fields: Any
    ) -> ReadableSpan:
        return ReadableSpan(
            name,
            context,
            parent,
            resource=self.resource,
            instrumentation_scope=self.scope,
            **fields,
        )

    def _request_spans(self, trace: RequestTrace, made: list[ReadableSpan]) -> None:
        scope, route, status, request_id, model, version = trace.request
        state = TraceState.from_header([trace.trace_state]) if trace.trace_state else None
        context = SpanContext(trace.trace_id, trace.span_id, False, SAMPLED, state)
        parent = None
        if trace.parent_span_id is not None:
            flags = SAMPLED if trace.parent_sampled else TraceFlags(0)
            parent = SpanContext(trace.trace_id, trace.parent_span_id, True, flags, state)
        method = scope["method"]
        made.append(
            self._span(
                f"{method} {route}" if route != "unmatched" else method,
                context,
                parent,
                kind=SpanKind.SERVER,
                attributes=http_server_attributes(scope, route, status, request_id, model, version),
                status=Status(StatusCode.ERROR) if status >= 500 else Status(StatusCode.UNSET),
                start_time=trace.start_ns,
                end_time=trace.end_ns,
            )
        )
        for name, start_ns, end_ns, attributes, links in trace.children:
            made.append(
                self._span(
                    name,
                    SpanContext(trace.trace_id, new_span_id(), False, SAMPLED, state),
                    context,
                    attributes=attributes,
                    links=[Link(SpanContext(ref.trace_id, ref.span_id, False, SAMPLED)) for ref in links],
                    start_time=start_ns,
                    end_time=end_ns,
                )
            )

    def _batch_span(
        self, reference: SpanRef, model: str, version: int, stats: Any, links: list[SpanRef], end_ns: int
    ) -> ReadableSpan:
        return self._span(
            "batch",
            SpanContext(reference.trace_id, reference.span_id, False, SAMPLED),
            None,
            attributes={
                "lstm_service.model": model,
                "lstm_service.model.version": version,
                "lstm_service.batch.size": stats.size,
                "lstm_service.batch.requests": stats.requests,
                "lstm_service.batch.tokens": stats.tokens,
                "lstm_service.batch.padded_tokens": stats.padded_tokens,
                "lstm_service.batch.padding": round(stats.padded_tokens / max(1, stats.tokens) - 1, 4),
            },
            links=[Link(SpanContext(ref.trace_id, ref.span_id, False, SAMPLED)) for ref in links],
            status=Status(StatusCode.ERROR, "the model failed") if stats.failed else Status(StatusCode.UNSET),
            start_time=stats.started_ns,
            end_time=end_ns,
        )

    def shutdown(self) -> None:
        self._closing.set()
        self._lost.set()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def http_server_attributes(
    scope: Mapping[str, Any], route: str, status: int, request_id: str, model: str | None, version: int | None
) -> dict[str, Any]:
    """The request span's attributes: OpenTelemetry's HTTP server conventions, then the service's own."""
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "http.response.status_code": status,
        "network.protocol.version": scope.get("http_version", "1.1"),
        "lstm_service.request_id": request_id,
    }
    if route != "unmatched":
        attributes["http.route"] = route
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    server, client = scope.get("server"), scope.get("client")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    if client:
        attributes["client.address"] = client[0]
    for key, value in scope["headers"]:
        if key.lower() == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
    if status >= 500:
        attributes["error.type"] = str(status)
    if model is not None:
        attributes["lstm_service.model"] = model
        attributes["lstm_service.model.version"] = version
    return attributes


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """(trace id, span id, sampled) of a W3C ``traceparent``; None when it is not a valid one."""
    if len(value) > _TRACEPARENT_MAX_CHARS:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & TraceFlags.SAMPLED)


class Sampling:
    """The sampler ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` name, decided in a few integer
    operations with the SDK's rules: ``traceidratio`` keeps a trace when the low 64 bits of its id are below
    ``ratio x 2^64``; ``parentbased_*`` follows the caller's sampled flag when there is a caller. (The SDK's
    ``Sampler.should_sample`` builds context objects for the same answer: a tenth of a request's CPU time.)
    """

    NAMES = (
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    )

    def __init__(self, name: str, ratio: float = 1.0) -> None:
        if name not in self.NAMES:
            raise TracingConfigError(f"OTEL_TRACES_SAMPLER={name!r}: use one of {', '.join(self.NAMES)}")
        if not 0.0 <= ratio <= 1.0:
            raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={ratio}: a ratio from 0 to 1")
        self.parent_based = name.startswith("parentbased_")
        root = name.removeprefix("parentbased_")
        self.bound = {"always_on": 1 << 64, "always_off": 0}.get(root, round(ratio * (1 << 64)))
        self.description = f"{name} {ratio}" if root == "traceidratio" else name

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Sampling:
        name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
        argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
        if not argument or not name.endswith("traceidratio"):
            return cls(name)
        try:
            ratio = float(argument)
        except ValueError:
            raise TracingConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={argument!r}: a ratio from 0 to 1, e.g. 0.1"
            ) from None
        return cls(name, ratio)

    def sampled(self, trace_id: int, parent_sampled: bool | None) -> bool:
        """Whether a trace is recorded; ``parent_sampled`` is None without a caller's ``traceparent``."""
        if parent_sampled is not None and self.parent_based:
            return parent_sampled
        return (trace_id & _TRACE_ID_LOW_BITS) < self.bound


def start(environ: Mapping[str, str] | None = None, exporter: SpanExporter | None = None) -> Tracing:
    """This process's tracing, from the ``OTEL_*`` variables; :class:`TracingConfigError` for a setting it
    cannot follow. ``exporter`` replaces the one the variables name (the tests give their own)."""
    environ = os.environ if environ is None else environ
    sampler = Sampling.from_environ(environ)  # every variable is checked before anything starts
    limit = _positive_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    delay = _positive_int(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000)
    batch = min(limit, _positive_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
    named, endpoint = _exporter(environ)
    exporter = named if exporter is None else exporter
    resource = _resource()
    maker = _SpanMaker(exporter, resource, endpoint)
    processor = BatchSpanProcessor(
        maker, max_queue_size=limit, schedule_delay_millis=delay, max_export_batch_size=batch
    )
    maker.first_probe.wait(_FIRST_PROBE_SECONDS)  # so that the first requests are traced when it does
    logger.info(
        "tracing on: %s, service %s, instance %s, sampler %s",
        endpoint,
        resource.attributes.get("service.name"),
        resource.attributes.get("service.instance.id"),
        sampler.description,
    )
    return Tracing(sampler, processor, maker, limit)


def _exporter(environ: Mapping[str, str]) -> tuple[SpanExporter, str]:
    """The exporter ``OTEL_TRACES_EXPORTER`` and the OTLP protocol variables name, and where it sends."""
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "none":
        return _Discard(), "nowhere (OTEL_TRACES_EXPORTER=none)"
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), "the console"
    if kind != "otlp":
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={kind!r}: this service exports with otlp, console or none"
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip().lower() or "http/protobuf"
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        http = HttpExporter()
        return http, f"OTLP http/protobuf {http._endpoint}"  # noqa: SLF001  (for the log line only)
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError as error:
            raise TracingConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the OTLP gRPC exporter: "
                "pip install 'lstm-service[tracing-grpc]' (or use http/protobuf)"
            ) from error
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"
        )
        return GrpcExporter(), f"OTLP grpc {endpoint}"
    raise TracingConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this service exports OTLP as http/protobuf or grpc"
    )


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _resource() -> Resource:
    """``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK), ``lstm-service`` as the
    default name, and this process's own instance id and pid (every worker exports as itself)."""
    resource = Resource.create(
        {
            "service.version": __version__,
            "service.instance.id": str(uuid.uuid4()),
            "process.pid": os.getpid(),
        }
    )
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "lstm-service"}))
    return resource


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise TracingConfigError(f"{name}={text!r}: must be a whole number >= 1 (default {default})")
    return int(text)
