"""The one plain ASGI layer every HTTP request passes (no ``BaseHTTPMiddleware``: it costs a task per
request): :class:`Front`.

It keeps the request id (``X-Request-ID`` in and out), the request deadline, the timing headers
(``X-Queue-Time``, ``X-Inference-Time`` in ms, when a model answered), request metrics, one access log line
per request and the last-resort 500 for anything unhandled; it reads the body up to ``max_body_bytes``
(413 beyond, before any parsing), hands it to a hot route or declares it JSON, whatever its
``Content-Type`` said, for FastAPI's routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.api.gate import Gate
from service.api.hotpath import HotRoutes
from service.errors import INTERNAL_MESSAGE, ErrorType, Overloaded, ServiceError
from service.lifecycle import is_draining
from service.observability import load_metrics, metrics
from service.observability.context import DEADLINE, RECORD, REQUEST_ID, RequestRecord

if TYPE_CHECKING:
    from service.observability.tracing_export import Tracing

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("service.access")

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it is short and harmless in a log line or a header.
_ACCEPTED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# How much of an over-long body is read and dropped so that the client can read its 413 (see _too_large).
_DISCARD_BYTES = 64 << 20
_DISCARD_SECONDS = 10.0
_JSON_HEADER = (b"content-type", b"application/json")
# The status recorded (metrics, access log) for a request whose client left before its body ended: nginx's
# 499, so that clients cannot raise the 5xx rate by hanging up.
CLIENT_CLOSED_REQUEST = 499
_CLIENT_LEFT = b"<client left>"  # compared by identity: a body is never this very object


# A random per-process prefix and a counter: unique across workers and restarts, and far cheaper than
# uuid4 on every request (uuid4 was a tenth of the event loop's samples under load).
_REQUEST_ID_PREFIX = os.urandom(8).hex()
_request_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):016x}"  # 32 hex digits, like uuid4().hex


class Front:
    """The one ASGI layer in front of the application, for every HTTP request.

    In order: the request id, deadline and record; the credential a body-carrying request's route needs,
    checked from the headers (:class:`service.api.gate.Gate`: 401 without reading the body); the body,
    read up to ``max_body_bytes`` (413 beyond, before any parsing); then a hot route answers
    (:class:`service.api.hotpath.HotRoutes`), or the body is replayed to ``app`` (FastAPI's stack: router,
    dependencies, error handlers). Afterwards the timing headers, metrics and the access line, and the
    last-resort 500 for anything unhandled. One layer, not a stack of middlewares: each layer cost a
    coroutine, a ``send`` wrapper and a pass over the headers per request, and FastAPI's own outer layers
    (server-error, telemetry, body-limit middlewares) are skipped by the hot routes altogether
    (:class:`service.api.app.ServiceApp`).
    """

    def __init__(
        self,
        app: ASGIApp,
        hot_routes: HotRoutes | None,
        timeout_seconds: float,
        max_body_bytes: int,
        gate: Gate | None = None,
    ) -> None:
        self.app = app
        self.gate = gate
        self.hot_routes = hot_routes
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        # Set by the lifespan when LSTM_SERVICE_TRACING is on (each process its own); None: no tracing work.
        self.tracing: Tracing | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = None
        declared = None
        routing = None
        for key, value in scope["headers"]:  # one pass for the headers read here
            name = key.lower()
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
            elif name == b"x-routing-key":
                routing = value[:256].decode("latin-1")
        request_id = incoming if incoming and _ACCEPTED_REQUEST_ID.match(incoming) else _new_request_id()
        record = RequestRecord(routing_key=routing)
        tracing = self.tracing
        if tracing is not None:
            record.trace = tracing.begin(scope)
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
                message = {
                    **message,
                    "headers": _answer_headers(message.get("headers", ()), request_id, record),
                }
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            if scope["method"] not in _BODY_METHODS:
                await self.app(scope, receive, send_with_id)
            elif (refusal := self._refusal(scope)) is not None:
                await refusal(scope, receive, send_with_id)  # a credential is missing: the body stays unread
            elif declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_id, unread=True)
            else:
                body = await self._read_body(scope, receive, send_with_id)
                if body is _CLIENT_LEFT:
                    status = CLIENT_CLOSED_REQUEST  # nobody to answer; not the server's error
                elif body is None:
                    pass  # the body was too large (413 sent)
                elif self.hot_routes is not None and (
                    matched := self.hot_routes.match(scope["method"], scope["path"])
                ):
                    answer = await self.hot_routes.answer(matched, scope, body)
                    if isinstance(answer, bytes):  # the common case: a 200 with a JSON body
                        status = 200
                        response_started = True
                        headers = _answer_headers(
                            [(b"content-length", str(len(answer)).encode()), _JSON_HEADER], request_id, record
                        )
                        await send({"type": "http.response.start", "status": 200, "headers": headers})
                        await send({"type": "http.response.body", "body": answer})
                    else:
                        await answer(scope, receive, send_with_id)
                else:
                    await self.app(_as_json(scope), _replay(body, receive), send_with_id)
        except Exception:
            logger.exception("unhandled error answering %s %s", scope["method"], _escaped(scope["path"]))
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
            load_metrics.observe_model_request(record.model, route, status, seconds)
            _log_access(scope, route, status, seconds, record)
            if tracing is not None:
                tracing.end(record, scope, route, status, request_id)
            for variable, token in zip((REQUEST_ID, DEADLINE, RECORD), tokens, strict=True):
                variable.reset(token)  # type: ignore[attr-defined]

    def _refusal(self, scope: Scope) -> ASGIApp | None:
        """The answer to a request the gate refuses from its headers. Without its credential the body is
        never read (the connection closes after the answer); a vector route refused while the budget's
        queue is full has its body read and dropped first (as :meth:`_too_large` does), so that a client
        still sending sees its 429 rather than a reset, and may send again on the same connection."""
        if self.gate is None:
            return None
        matched = self.hot_routes.match(scope["method"], scope["path"]) if self.hot_routes else None
        try:
            self.gate.check(scope, matched[0] if matched else None)
        except Overloaded as error:
            return _after_dropping_the_body(error, self.max_body_bytes)
        except ServiceError as error:
            return error_response(error.error_type, error.message, {**error.headers, "Connection": "close"})
        return None

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body; :data:`_CLIENT_LEFT` when the client left before it ended; None when the body
        passed the limit (413 answered)."""
        chunks: list[bytes] = []
        size = 0
        while True:  # bounded: stops at max_body_bytes or at the end of the body
            message = await receive()
            if message["type"] == "http.disconnect":
                return _CLIENT_LEFT
            chunk = message.get("body", b"")
            size += len(chunk)
            more_body = message.get("more_body", False)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send, unread=more_body)
                return None
            if not more_body:
                return chunk if not chunks else b"".join([*chunks, chunk])
            chunks.append(chunk)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, unread: bool) -> None:
        if unread:
            # Answering and closing while the client still sends makes it see a broken pipe (or a reset)
            # instead of this 413; read and drop the rest first, within bounds.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_discard_body(receive, _DISCARD_BYTES), _DISCARD_SECONDS)
        message = f"request body larger than {self.max_body_bytes} bytes (LSTM_SERVICE_MAX_BODY_BYTES)"
        response = error_response(ErrorType.payload_too_large, message, {"Connection": "close"})
        await response(scope, receive, send)


class LastResort:
    """Inside FastAPI's stack, the generic 500 for an exception no handler took, before Starlette's
    server-error middleware answers it in plain text (the front layer does the same for the hot routes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False

        async def watch(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if response_started or scope["type"] != "http":
                raise  # too late for an error body; the server closes the connection
            logger.exception("unhandled error answering %s %s", scope["method"], _escaped(scope["path"]))
            await error_response(ErrorType.internal, INTERNAL_MESSAGE)(
                scope, receive, send
            )  # front adds the id


def _answer_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id: str, record: RequestRecord
) -> list[tuple[bytes, bytes]]:
    """The answer's headers plus the request id and, when a model answered, the timing headers (in ms,
    TEI's names); ``Connection: close`` while draining (clients should not reuse the connection)."""
    # Raw header tuples appended to a copy: MutableHeaders costs more and changes the original.
    answer = [*headers, (b"x-request-id", request_id.encode("latin-1"))]
    if record.inference_seconds is not None:
        queue_ms = (record.queue_seconds or 0.0) * 1000
        answer.append((b"x-queue-time", f"{queue_ms:.3f}".encode()))
        answer.append((b"x-inference-time", f"{record.inference_seconds * 1000:.3f}".encode()))
    if record.alias is not None:  # the alias that chose the version (canary, stable, a named one)
        answer.append((b"x-model-alias", record.alias.encode("latin-1")))
        answer.append((b"x-model-version", str(record.version).encode("latin-1")))
    if record.trace is not None:  # tracing on: this request's trace and span, for the caller's logs
        answer.append((b"traceresponse", record.trace.traceresponse()))
    if is_draining():
        answer = [(key, value) for key, value in answer if key.lower() != b"connection"]
        answer.append((b"connection", b"close"))
    return answer


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
    if not path.isprintable():  # a decoded %0D%0A would otherwise start a forged line
        path = _escaped(path)
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
    message = "%s %s %d %.1f ms"
    arguments: tuple[object, ...] = (method, path, status, seconds * 1000)
    if record.trace is not None:  # tracing on: logs and traces join on the trace id
        extra["trace_id"] = record.trace.trace_id_hex
        message, arguments = "%s %s %d %.1f ms trace %s", (*arguments, extra["trace_id"])
    line = access_logger.makeRecord(
        access_logger.name, logging.INFO, __file__, 0, message, arguments, None, "_log_access", extra
    )
    access_logger.handle(line)


def _escaped(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\r``, ``\\n``, ``\\x1b``...)."""
    return text.encode("unicode_escape").decode("ascii")


async def _discard_body(receive: Receive, limit: int) -> bool:
    """Read and drop a body, up to about ``limit`` bytes: True when it ended within them."""
    discarded = 0
    while discarded <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        if not message.get("more_body", False):
            return True
        discarded += len(message.get("body", b""))
    return False


def _after_dropping_the_body(error: ServiceError, limit: int) -> ASGIApp:
    """``error``'s answer once the body is read and dropped (the connection is kept when it ended within
    ``limit`` bytes and ``_DISCARD_SECONDS``, else closed)."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        ended = False
        with contextlib.suppress(asyncio.TimeoutError):
            ended = await asyncio.wait_for(_discard_body(receive, limit), _DISCARD_SECONDS)
        headers = error.headers if ended else {**error.headers, "Connection": "close"}
        await error_response(error.error_type, error.message, headers)(scope, receive, send)

    return answer


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
