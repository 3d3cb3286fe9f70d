"""The parts of tracing, called directly: the W3C header and the sampler (checked against the SDK's own),
the configuration the ``OTEL_*`` variables give, the bounded queue and the back-off when exports fail, and
the spans a recorded request becomes. The whole path, over a real server and a real receiver, is in
test_tracing.py."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import _KNOWN_SAMPLERS
from opentelemetry.trace import SpanKind, StatusCode, TraceFlags, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.observability import tracing_export
from service.observability.context import RequestRecord
from service.observability.tracing import RequestTrace, SpanRef
from service.observability.tracing_export import (
    UNTRACED_PATHS,
    Sampling,
    TracingConfigError,
    parse_traceparent,
    start,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
HEADERS = [
    f"00-{TRACE}-{SPAN}-01",
    f"00-{TRACE}-{SPAN}-00",
    f"00-{TRACE}-{SPAN}-03",  # unknown flags beside "sampled"
    f" \t00-{TRACE}-{SPAN}-01 ",
    f"01-{TRACE}-{SPAN}-01-future-field",  # a later version may add fields
    f"00-{TRACE}-{SPAN}-01-extra",  # version 00 may not
    f"ff-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01",
    f"00-{TRACE}-{'0' * 16}-01",
    f"00-{TRACE.upper()}-{SPAN}-01",
    f"00-{TRACE[:-1]}-{SPAN}-01",
    "00-zz-1-01",
    "",
    f"00-{TRACE}-{SPAN}-01" + " " * 600,
]


@pytest.mark.parametrize("header", HEADERS)
def test_traceparent_is_read_as_the_sdks_propagator_reads_it(header: str) -> None:
    context = TraceContextTextMapPropagator().extract({"traceparent": header})
    expected = get_current_span(context).get_span_context()
    parsed = parse_traceparent(header)
    if not expected.is_valid:
        assert parsed is None
    else:
        assert parsed == (expected.trace_id, expected.span_id, expected.trace_flags.sampled)


@pytest.mark.parametrize("name", Sampling.NAMES)
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_sampling_decides_as_the_sdks_sampler(name: str, ratio: float) -> None:
    ours = Sampling(name, ratio)
    known = _KNOWN_SAMPLERS[name]
    theirs = known(ratio) if name.endswith("traceidratio") else known
    propagator = TraceContextTextMapPropagator()
    generator = random.Random(7)
    for _ in range(300):
        trace_id = generator.getrandbits(128) or 1
        for parent_sampled in (None, True, False):
            if parent_sampled is None:
                context = None
            else:
                flags = "01" if parent_sampled else "00"
                context = propagator.extract({"traceparent": f"00-{trace_id:032x}-{SPAN}-{flags}"})
            decision = theirs.should_sample(context, trace_id, "request", SpanKind.SERVER)
            assert ours.sampled(trace_id, parent_sampled) == decision.decision.is_sampled()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER='jaeger_remote'"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, "a ratio from 0 to 1"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "a ratio from 0 to 1"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp, console or none"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "http/protobuf or grpc",
        ),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE='0'"),
    ],
)
def test_settings_it_cannot_follow_are_refused_with_what_to_set(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(TracingConfigError, match=message.replace("(", r"\(")):
        start({"OTEL_TRACES_EXPORTER": "none", **environ})


def test_both_otlp_protocols_build_the_sdks_exporters() -> None:
    http = start({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    grpc = start({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert type(http.maker.exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
        assert type(grpc.maker.exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
        assert http.maker.resource.attributes["service.name"] == "lstm-service"
        assert (
            http.maker.resource.attributes["service.instance.id"]
            != grpc.maker.resource.attributes["service.instance.id"]
        )
    finally:
        http.shutdown(1)
        grpc.shutdown(1)


def _scope(path: str = "/classify", headers: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "scheme": "http",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "query_string": b"",
        "headers": [(b"user-agent", b"unit"), *headers],
    }


class _Exporter(SpanExporter):
    """Keeps what it is given; fails while ``failing``; blocks while ``gate`` is clear."""

    def __init__(self) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(30)
        if self.failing:
            return SpanExportResult.FAILURE
        self.batches.append(list(spans))
        return SpanExportResult.SUCCESS


def _tracing(exporter: SpanExporter, queue: int = 8) -> tracing_export.Tracing:
    environ = {"OTEL_TRACES_EXPORTER": "none", "OTEL_BSP_MAX_QUEUE_SIZE": str(queue)}
    environ["OTEL_BSP_SCHEDULE_DELAY"] = "3600000"  # exports only when asked (force_flush) or when full
    return start(environ, exporter)


def _traced_request(
    tracing: tracing_export.Tracing, headers: Sequence[tuple[bytes, bytes]] = ()
) -> RequestRecord:
    record = RequestRecord(model="tiny-en", version=1)
    record.trace = tracing.begin(_scope(headers=headers))
    return record


def test_a_recorded_request_becomes_a_server_span_and_its_children() -> None:
    exporter = InMemorySpanExporter()
    tracing = _tracing(exporter)
    headers = [(b"traceparent", f"00-{TRACE}-{SPAN}-01".encode()), (b"tracestate", b"vendor=abc")]
    record = _traced_request(tracing, headers)
    trace = record.trace
    assert trace is not None and trace.recording
    trace.child("tokenize", trace.start_ns, trace.start_ns + 10, {"lstm_service.texts": 1})
    trace.child("queue", trace.start_ns + 10, trace.start_ns + 20, None, [SpanRef(5, 6)])
    tracing.end(record, _scope(), "/classify", 503, "request-1")
    tracing.processor.force_flush()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"POST /classify", "tokenize", "queue"}
    root = spans["POST /classify"]
    assert root.kind is SpanKind.SERVER and root.status.status_code is StatusCode.ERROR
    assert root.parent is not None and (root.parent.trace_id, root.parent.span_id) == (
        int(TRACE, 16),
        int(SPAN, 16),
    )
    assert root.parent.is_remote and root.context.trace_state.get("vendor") == "abc"
    assert root.attributes is not None and root.attributes["error.type"] == "503"
    assert root.attributes["lstm_service.model"] == "tiny-en"
    assert spans["queue"].parent == root.context
    assert [(link.context.trace_id, link.context.span_id) for link in spans["queue"].links] == [(5, 6)]
    tracing.shutdown(1)


def test_a_batch_of_recorded_requests_gets_one_span_linked_to_each() -> None:
    exporter = InMemorySpanExporter()
    tracing = _tracing(exporter)
    records = [_traced_request(tracing) for _ in range(3)]
    unrecorded = RequestRecord()  # tracing on, not sampled: no link
    unrecorded.trace = RequestTrace(1, None, False, None, False, 0)
    stats = SimpleNamespace(
        size=5, requests=4, tokens=40, padded_tokens=50, failed=False, started_ns=1, run_seconds=0.001
    )
    stats.served = (*records, unrecorded)
    tracing.batch("tiny-en", 1, stats)
    tracing.processor.force_flush()
    (batch,) = exporter.get_finished_spans()
    linked = {(link.context.trace_id, link.context.span_id) for link in batch.links}
    assert linked == {(r.trace.trace_id, r.trace.span_id) for r in records if r.trace is not None}
    assert batch.attributes is not None and batch.attributes["lstm_service.batch.padding"] == 0.25
    assert all(r.trace is not None and len(r.trace.batches) == 1 for r in records)
    tracing.shutdown(1)


def _until(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def test_a_full_queue_drops_traces_instead_of_waiting() -> None:
    exporter = _Exporter()
    tracing = _tracing(exporter, queue=4)
    _until(lambda: tracing.maker.connected)
    exporter.gate.clear()  # the collector stops answering in the middle of an export
    started = time.monotonic()
    for number in range(12):
        tracing.end(_traced_request(tracing), _scope(), "/classify", 200, f"r{number}")
    assert time.monotonic() - started < 2  # nothing waited for the collector
    assert tracing.dropped >= 12 - 2 * 4  # one export's worth taken off the queue, one queue's worth kept
    exporter.gate.set()
    tracing.shutdown(5)


def test_while_the_collector_does_not_answer_requests_record_nothing() -> None:
    exporter = _Exporter()
    exporter.failing = True
    tracing = _tracing(exporter)
    _until(tracing.maker.first_probe.is_set)
    record = _traced_request(tracing)
    assert record.trace is not None and not record.trace.recording  # still has ids for the header and log
    assert record.trace.traceresponse().endswith(b"-00")
    assert tracing.maker.backoff == 2.0

    exporter.failing = False  # it comes back: the next probe finds it, and recording resumes
    _until(lambda: tracing.maker.connected)
    assert tracing.maker.backoff == 0.0
    recorded = [_traced_request(tracing) for _ in range(3)]
    assert all(r.trace is not None and r.trace.recording for r in recorded)

    exporter.failing = True  # it goes away again: the export fails, and recording stops at once
    for number, record in enumerate(recorded):
        tracing.end(record, _scope(), "/classify", 200, f"r{number}")
    tracing.processor.force_flush()
    assert not tracing.maker.connected
    assert not _traced_request(tracing).trace.recording  # type: ignore[union-attr]
    tracing.shutdown(1)


@pytest.mark.parametrize("path", sorted(UNTRACED_PATHS))
def test_probes_and_scrapes_get_no_trace(path: str) -> None:
    tracing = _tracing(InMemorySpanExporter())
    assert tracing.begin(_scope(path)) is None
    tracing.shutdown(1)


@pytest.mark.anyio
async def test_with_tracing_off_answers_carry_no_trace_header(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/classify", json={"text": "the chef made soup"}, headers={"traceparent": f"00-{TRACE}-{SPAN}-01"}
    )
    assert reply.status_code == 200
    assert "traceresponse" not in reply.headers


def test_the_sampled_flag_constant_is_what_the_processor_checks() -> None:
    assert tracing_export._Pending.context.trace_flags == TraceFlags(TraceFlags.SAMPLED)
