"""Limits on how a client sends a request, enforced as the bytes arrive: uvicorn's httptools protocol with
a cap on the request head and two deadlines.

- The head (request line and headers) may hold at most ``max_head_bytes`` and ``max_headers`` headers:
  past either, the answer is 431 and the connection closes. httptools sets no limit of its own and grows
  a header value by concatenation, so one endless header line would otherwise cost a worker ever more
  CPU and memory.
- The head must arrive within ``head_timeout_seconds`` of the connection opening (or of the first byte
  of the next request on a kept-alive connection), the body within ``body_timeout_seconds`` of the head:
  past either, the answer is 408 (if no answer started) and the connection closes. A client that sends
  a byte now and then holds nothing for longer than that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

KIB = 1 << 10


@dataclass(frozen=True)
class HttpLimits:
    max_head_bytes: int = 64 * KIB
    max_headers: int = 100
    head_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head past the cap."""


def _plain_answer(status: str, message: str) -> bytes:
    body = message.encode("ascii")
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` (set on a subclass by :func:`protocol_class`)."""

    limits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True  # from the connection's start, and from each request's first byte
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires (loop time)
        self._deadline = 0.0  # when what the connection waits for is overdue (loop time)
        self._waiting_for: str | None = None  # "the request head", "the request body", or nothing
        self._allowed = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.head_timeout_seconds, "the request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadTooLarge) or isinstance(error.__cause__, _HeadTooLarge):
                self._refuse_head()
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and not self.transport.is_closing():
            # Counted whole: a chunk that began the head may also end a previous request's body.
            self._head_bytes += len(data)
            too_many = self.headers is not None and len(self.headers) > self.limits.max_headers
            if too_many or self._head_bytes > self.limits.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a kept-alive connection's next request: its head gets a deadline
            self._in_head, self._head_bytes = True, 0
            self._arm(self.limits.head_timeout_seconds, "the request head")

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_headers:
            raise _HeadTooLarge  # the parser stops; data_received answers 431
        self._in_head = False
        self._arm(self.limits.body_timeout_seconds, "the request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # -- answers --------------------------------------------------------------------------------------

    def _refuse_head(self) -> None:
        caps = f"{self.limits.max_head_bytes} bytes or {self.limits.max_headers} headers"
        self.logger.warning("request head larger than %s: 431", caps)
        self._close_with(b"431 Request Header Fields Too Large", f"request head larger than {caps}")

    def _bad_request(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self.send_400_response("Invalid HTTP request received.")

    def _close_with(self, status: bytes, message: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_plain_answer(status.decode("ascii"), message))
            self.transport.close()

    # -- deadlines: one timer per connection, moved only when it fires (not armed and cancelled for every
    # request: that cost 2-3 % of a keep-alive request's CPU) --------------------------------------------

    def _arm(self, seconds: float, what: str) -> None:
        self._deadline = self.loop.time() + seconds
        self._waiting_for, self._allowed = what, seconds
        if self._timer is None or self._deadline < self._timer_at:
            self._schedule()

    def _disarm(self) -> None:
        self._waiting_for = None  # the timer, if any, finds nothing to do when it fires

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = self._deadline
        self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiting_for is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:
            self._schedule()  # the deadline moved on since this timer was set
            return
        self._timed_out(self._waiting_for, self._allowed)

    def _timed_out(self, what: str, seconds: float) -> None:
        self._waiting_for = None
        if self._in_head and self._head_bytes == 0 and self.cycle is None:
            self.transport.close()  # a connection that never sent a byte: nobody to answer
            return
        self.logger.info("%s did not arrive within %.1f s; closing the connection", what, seconds)
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self._close_with(b"408 Request Timeout", f"{what} did not arrive within {seconds:g} s")
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app, waiting for the body, reads a disconnect
            self.cycle.message_event.set()


def protocol_class(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, with ``limits``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
