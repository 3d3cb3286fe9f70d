"""What every gRPC call leaves behind, like an HTTP request: a request id for its log lines (the caller's
``x-request-id`` metadata when it is a plain token, else a new one), the Prometheus request metrics and
one access log line.

A call is recorded as ``POST /inference.GRPCInferenceService/<Method>`` (what it is on the wire) with the
HTTP status its outcome would have had on the HTTP routes (200, or the status of the error's kind), so
dashboards and alerts built on ``lstm_service_requests_total`` count both wires alike.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from service.observability import metrics
from service.observability.context import RECORD, REQUEST_ID, RequestRecord

access_logger = logging.getLogger("service.access")
_ACCEPTED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "x-request-id" and isinstance(value, str) and _ACCEPTED_REQUEST_ID.match(value):
            return value
    return uuid.uuid4().hex


def _routing_key(context: grpc.aio.ServicerContext) -> str | None:
    """The canary split's key: ``x-routing-key`` metadata, as the HTTP header."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "x-routing-key" and isinstance(value, str):
            return value[:256]
    return None


class Call:
    """The outcome an RPC sets (``status``) while :func:`recorded` times it."""

    status = 200


@contextmanager
def recorded(route: str, context: grpc.aio.ServicerContext) -> Iterator[Call]:
    call = Call()
    record = RequestRecord(route=route, routing_key=_routing_key(context))
    tokens = (REQUEST_ID.set(_request_id(context)), RECORD.set(record))
    started = time.perf_counter()
    try:
        yield call
    finally:
        seconds = time.perf_counter() - started
        metrics.observe_request(route, "POST", call.status, seconds)
        _log(route, call.status, seconds, record)
        REQUEST_ID.reset(tokens[0])
        RECORD.reset(tokens[1])


def _log(route: str, status: int, seconds: float, record: RequestRecord) -> None:
    if not access_logger.isEnabledFor(logging.INFO):
        return

    def milliseconds(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    extra = {
        "method": "POST",
        "path": route,
        "route": route,
        "status": status,
        "model": record.model,
        "version": record.version,
        "duration_ms": milliseconds(seconds),
        "queue_ms": milliseconds(record.queue_seconds),
        "inference_ms": milliseconds(record.inference_seconds),
    }
    access_logger.info("POST %s %d %.1f ms", route, status, seconds * 1000, extra=extra)
