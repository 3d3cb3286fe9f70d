"""Tracing end to end: a real server process exports over OTLP/HTTP to a real receiver on 127.0.0.1
(:class:`support.otlp.OtlpReceiver`, decoding the protobuf), and the tests read the span tree it got.

The server samples with ``parentbased_traceidratio`` at ratio 0: requests that come with a sampled
``traceparent`` are traced, requests without one are not, so one server shows both sides of sampling.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.live_server import LiveServer, Load
from support.otlp import OtlpReceiver, ReceivedSpan

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


def tracing_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "LSTM_SERVICE_TRACING": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s: the tests wait less
        "OTEL_SERVICE_NAME": "tracing-test",
        **extra,
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def server(
    tiny_store: Path, tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("tracing") / "server.log"
    env = tracing_env(
        receiver.endpoint, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0"
    )
    running = LiveServer.start(tiny_store, log, ["--workers", "1", "--drain-seconds", "0"], env)
    try:
        yield running
    finally:
        running.kill()


def new_parent(sampled: bool = True) -> tuple[str, str, str]:
    """A caller's (trace id, span id, traceparent)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


def request_span(spans: list[ReceivedSpan], trace_id: str) -> ReceivedSpan:
    (found,) = [span for span in in_trace(spans, trace_id) if span.kind == SERVER_KIND]
    return found


def test_a_traced_classify_continues_the_callers_trace(server: LiveServer, receiver: OtlpReceiver) -> None:
    trace_id, caller_span, traceparent = new_parent()
    headers = {"traceparent": traceparent, "tracestate": "vendor=abc", "User-Agent": "tracing-test"}
    reply = server.call(
        "POST", "/classify", {"texts": ["the chef made soup", "stocks fell"]}, headers=headers
    )
    assert reply.status == 200, reply.body

    version, answer_trace, answer_span, flags = reply.headers["traceresponse"].split("-")
    assert (version, answer_trace, flags) == ("00", trace_id, "01")
    spans = receiver.wait_for(lambda spans: {"encode"} <= {s.name for s in in_trace(spans, trace_id)})
    root = request_span(spans, trace_id)
    assert (root.span_id, root.parent_span_id) == (answer_span, caller_span)
    assert root.name == "POST /classify"
    assert root.trace_state == "vendor=abc"
    assert root.attributes["http.request.method"] == "POST"
    assert root.attributes["http.route"] == "/classify"
    assert root.attributes["url.path"] == "/classify"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["user_agent.original"] == "tracing-test"
    assert root.attributes["lstm_service.request_id"] == reply.headers["x-request-id"]
    assert root.attributes["lstm_service.model"] == reply.body["model"]
    assert root.attributes["lstm_service.model.version"] == reply.body["version"]
    assert root.resource["service.name"] == "tracing-test"

    children = {span.name: span for span in in_trace(spans, trace_id) if span.parent_span_id == root.span_id}
    assert set(children) == {"decode", "tokenize", "queue", "encode"}
    assert children["tokenize"].attributes["lstm_service.texts"] == 2
    for child in children.values():
        assert root.start_ns <= child.start_ns <= child.end_ns <= root.end_ns, child.name
    assert children["decode"].end_ns <= children["tokenize"].start_ns <= children["queue"].start_ns

    # The queue span links to the batches that ran the texts (texts of different lengths may run apart);
    # each batch span links back to the request.
    batch_links = set(children["queue"].links)
    assert 1 <= len(batch_links) <= 2
    batch_ids = {span_id for _, span_id in batch_links}
    spans = receiver.wait_for(lambda spans: batch_ids <= {s.span_id for s in spans if s.name == "batch"})
    batches = [span for span in spans if span.span_id in batch_ids]
    assert {(span.trace_id, span.span_id) for span in batches} == batch_links
    for batch in batches:
        assert batch.trace_id != trace_id and batch.parent_span_id == ""
        assert (trace_id, root.span_id) in batch.links
        assert (
            batch.attributes["lstm_service.batch.padded_tokens"]
            >= batch.attributes["lstm_service.batch.tokens"]
        )
    assert sum(batch.attributes["lstm_service.batch.size"] for batch in batches) >= 2

    # The access log line carries the trace id, so logs and traces join.
    assert len(access_lines(server, trace_id)) == 1, server.log_text()[-2000:]


def access_lines(server: LiveServer, trace_id: str) -> list[dict[str, object]]:
    """The access log lines naming ``trace_id`` (the access log is written in bulk, every 0.1 s)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            r
            for r in server.log_records()
            if r.get("logger") == "service.access" and r.get("trace_id") == trace_id
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_64_concurrent_requests_batch_spans_link_every_request_they_served(
    server: LiveServer, receiver: OtlpReceiver
) -> None:
    parents = [new_parent() for _ in range(64)]
    texts = ["the market rallied", "a quiet match", "new phones sold out", "soup of the day"]

    def send(index: int) -> int:
        body = {"text": texts[index % len(texts)] * (1 + index % 3)}
        return server.call("POST", "/classify", body, headers={"traceparent": parents[index][2]}).status

    with ThreadPoolExecutor(64) as pool:
        assert list(pool.map(send, range(64))) == [200] * 64

    trace_ids = {trace_id for trace_id, _, _ in parents}
    spans = receiver.wait_for(
        lambda spans: (
            {s.trace_id for s in spans if s.name == "encode"} >= trace_ids
            and _linked_batches_arrived(spans, trace_ids)
        )
    )
    requests = {
        span.span_id: span for span in spans if span.kind == SERVER_KIND and span.trace_id in trace_ids
    }
    assert len(requests) == 64
    served: dict[str, set[str]] = {}  # batch span id -> the request spans whose queue span links to it
    for span in spans:
        if span.name == "queue" and span.trace_id in trace_ids:
            (link,) = span.links  # one text per request: one batch each
            served.setdefault(link[1], set()).add(span.parent_span_id)
    batches = {span.span_id: span for span in spans if span.name == "batch" and span.span_id in served}
    assert set(batches) == set(served)
    for batch_id, batch in batches.items():
        linked = {span_id for _, span_id in batch.links}
        assert linked == served[batch_id]
        assert batch.attributes["lstm_service.batch.requests"] == len(linked)
    assert set().union(*served.values()) == set(requests)
    assert max(len(linked) for linked in served.values()) > 1, "no two requests shared a batch"


def _linked_batches_arrived(spans: list[ReceivedSpan], trace_ids: set[str]) -> bool:
    wanted = {link[1] for s in spans if s.name == "queue" and s.trace_id in trace_ids for link in s.links}
    return wanted <= {s.span_id for s in spans if s.name == "batch"}


def test_sampling_follows_the_callers_decision_and_the_ratio(
    server: LiveServer, receiver: OtlpReceiver
) -> None:
    sampled_trace, _, sampled = new_parent(sampled=True)
    unsampled_trace, _, unsampled = new_parent(sampled=False)
    for headers in ({"traceparent": unsampled}, {}, {"traceparent": sampled}):
        reply = server.call("POST", "/classify", {"text": "stocks fell"}, headers=headers)
        assert reply.status == 200
        assert reply.headers["traceresponse"].endswith(
            "-01" if headers.get("traceparent") == sampled else "-00"
        )
    server.call("GET", "/readyz")
    server.call("GET", "/metrics")
    spans = receiver.wait_for(lambda spans: any(s.trace_id == sampled_trace for s in spans))
    # The processor exports in the order spans were queued: the earlier requests' spans would be here.
    assert in_trace(receiver.snapshot(), unsampled_trace) == []
    # ratio 0: a request without a parent is not traced; probes and scrapes never are
    paths = {s.attributes.get("url.path") for s in receiver.snapshot() if s.kind == SERVER_KIND}
    assert paths == {"/classify"}
    assert len(spans) > 0


def test_a_malformed_traceparent_starts_a_new_trace(server: LiveServer) -> None:
    reply = server.call("POST", "/classify", {"text": "stocks fell"}, headers={"traceparent": "00-zz-1-01"})
    assert reply.status == 200
    version, trace_id, span_id, flags = reply.headers["traceresponse"].split("-")
    assert len(trace_id) == 32 and trace_id != "0" * 32 and flags == "00"  # no parent: ratio 0 said no


@pytest.mark.skipif(os.cpu_count() == 1, reason="two workers")
def test_workers_export_as_themselves_and_a_collector_that_goes_away_fails_no_request(
    tiny_store: Path, tmp_path: Path
) -> None:
    receiver = OtlpReceiver()
    env = tracing_env(receiver.endpoint)
    server = LiveServer.start(
        tiny_store, tmp_path / "server.log", ["--workers", "2", "--drain-seconds", "0"], env
    )
    try:
        load = Load(server.port, lambda i: ("POST", "/classify", {"text": f"stocks fell {i}"}), clients=8)
        load.start()
        receiver.wait_for(lambda spans: len({s.resource["service.instance.id"] for s in spans}) == 2, 90)
        receiver.stop()  # the collector goes away while the load goes on
        answered = len(load.outcomes)
        load.wait_for(answered + 200, 120)
        load.stop()
        assert load.outcomes and all(outcome.status == 200 for outcome in load.outcomes), [
            o for o in load.outcomes if o.status != 200
        ][:3]
        pids = {s.resource["process.pid"] for s in receiver.snapshot()}
        assert len(pids) == 2
    finally:
        receiver.stop()
        server.kill()
