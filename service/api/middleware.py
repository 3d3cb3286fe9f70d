"""Two plain ASGI middlewares (no ``BaseHTTPMiddleware``: it costs a task per request).

- :class:`RequestContextMiddleware` (outermost): the request id (``X-Request-ID`` in and out), the request
  deadline, the timing headers (``X-Queue-Time``, ``X-Inference-Time`` in ms, when a model answered),
  request metrics, one access log line per request, and the last-resort 500 for anything unhandled.
- :class:`BodyLimitMiddleware`: reads the body up to ``max_body_bytes`` (413 beyond, before any parsing)
  and declares it JSON whatever its ``Content-Type`` said.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.errors import INTERNAL_MESSAGE, ErrorType
from service.lifecycle import is_draining
from service.observability import metrics
from service.observability.context import DEADLINE, RECORD, REQUEST_ID, RequestRecord

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("service.access")

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it is short and harmless in a log line or a header.
_ACCEPTED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# How much of an over-long body is read and dropped so that the client can read its 413 (see _too_large).
_DISCARD_BYTES = 64 << 20
_DISCARD_SECONDS = 10.0


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


# A random per-process prefix and a counter: unique across workers and restarts, and far cheaper than
# uuid4 on every request (uuid4 was a tenth of the event loop's samples under load).
_REQUEST_ID_PREFIX = os.urandom(8).hex()
_request_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):016x}"  # 32 hex digits, like uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _ACCEPTED_REQUEST_ID.match(incoming) else _new_request_id()
        record = RequestRecord()
        tokens = (
            REQUEST_ID.set(request_id),
            DEADLINE.set(time.monotonic() + self.timeout_seconds),
            RECORD.set(record),
        )
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started, status = True, message["status"]
                # Raw header tuples appended to a copy: MutableHeaders costs more and changes the original.
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode("latin-1"))]
                if record.inference_seconds is not None:  # a model answered (TEI's header names)
                    queue_ms = (record.queue_seconds or 0.0) * 1000
                    headers.append((b"x-queue-time", f"{queue_ms:.3f}".encode()))
                    headers.append((b"x-inference-time", f"{record.inference_seconds * 1000:.3f}".encode()))
                message = {**message, "headers": headers}
                if is_draining():  # clients should not reuse a connection to a server that is leaving
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # too late for an error body; the server closes the connection
            response = error_response(ErrorType.internal, INTERNAL_MESSAGE, {REQUEST_ID_HEADER: request_id})
            status = 500
            await response(scope, receive, send)
        finally:
            metrics.IN_FLIGHT.dec()
            seconds = time.perf_counter() - started
            # The template, e.g. /models/{name}: named by the hot route that answered, else by the router.
            route: str = (
                record.route if record.route is not None else getattr(scope.get("route"), "path", "unmatched")
            )
            metrics.observe_request(route, scope["method"], status, seconds)
            _log_access(scope, route, status, seconds, record)
            for variable, token in zip((REQUEST_ID, DEADLINE, RECORD), tokens, strict=True):
                variable.reset(token)  # type: ignore[attr-defined]


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _log_access(scope: Scope, route: str, status: int, seconds: float, record: RequestRecord) -> None:
    """One line per request; with LSTM_SERVICE_LOG_FORMAT=json the fields below are JSON keys.

    The record is made and handed to the handlers directly: ``Logger.info`` would also walk the stack to
    find its caller (a file name and line nobody prints), a third of the line's cost.
    """
    if not access_logger.isEnabledFor(logging.INFO):  # nothing to build when nobody would read it
        return
    method, path = scope["method"], scope["path"]
    extra = {
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "model": record.model,
        "version": record.version,
        "duration_ms": _milliseconds(seconds),
        "queue_ms": _milliseconds(record.queue_seconds),
        "inference_ms": _milliseconds(record.inference_seconds),
    }
    line = access_logger.makeRecord(
        access_logger.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d %.1f ms",
        (method, path, status, seconds * 1000),
        None,
        "_log_access",
        extra,
    )
    access_logger.handle(line)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send, unread=True)
            return
        chunks: list[bytes] = []
        size = 0
        while True:  # bounded: stops at max_body_bytes or at the end of the body
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            more_body = message.get("more_body", False)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send, unread=more_body)
                return
            chunks.append(chunk)
            if not more_body:
                break
        await self.app(_as_json(scope), _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, unread: bool) -> None:
        if unread:
            # Answering and closing while the client still sends makes it see a broken pipe (or a reset)
            # instead of this 413; read and drop the rest first, within bounds.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_discard_body(receive, _DISCARD_BYTES), _DISCARD_SECONDS)
        message = f"request body larger than {self.max_body_bytes} bytes (LSTM_SERVICE_MAX_BODY_BYTES)"
        response = error_response(ErrorType.payload_too_large, message, {"Connection": "close"})
        await response(scope, receive, send)


async def _discard_body(receive: Receive, limit: int) -> None:
    discarded = 0
    while discarded <= limit:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        discarded += len(message.get("body", b""))


def _as_json(scope: Scope) -> Scope:
    """The API speaks only JSON, so a body is parsed as JSON whatever its Content-Type says.

    ``curl -d`` sends ``application/x-www-form-urlencoded``; FastAPI would otherwise refuse to parse it
    (or, without a Content-Type, ignore the body). No route reads forms, so nothing is lost.
    """
    headers = [(key, value) for key, value in scope["headers"] if key.lower() != b"content-type"]
    # In place, not a copy: the router writes the matched route into this scope, and the outer middleware
    # reads it from there for its metrics label.
    scope["headers"] = [*headers, (b"content-type", b"application/json")]
    return scope


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body once, then listens for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
