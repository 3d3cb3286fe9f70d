"""Running uvicorn with a drain window: SIGTERM turns readiness to 503 at once, the server keeps answering
for ``drain_seconds`` (so load balancers notice and stop sending), then stops accepting, finishes every
request in flight (up to ``request_timeout_seconds``, past which no request may run anyway) and exits 0.

- One process: a :class:`DrainingServer` that takes its orders from the signals it receives.
- ``--workers N``: :mod:`service.supervisor` binds the socket and starts N processes, each a
  :class:`DrainingServer` that ignores signals and takes its orders from the supervisor, so a SIGTERM sent
  to the whole process group (systemd, ``kill -- -PGID``) drains exactly like one sent to the supervisor.

Orders: *drain* (SIGTERM) runs the drain window, then stops; *stop* (SIGINT, or a second SIGTERM during the
drain) skips what is left of the window and stops; *force* (a second SIGINT) stops without waiting for the
requests in flight. Only public uvicorn API is used: ``Server.serve``, ``handle_exit`` (the method uvicorn's
own signal handlers call), ``should_exit`` and ``force_exit``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import signal
import socket
import time
from types import FrameType
from typing import Any

import uvicorn

from service import lifecycle
from service.http_limits import HttpLimits, protocol_class
from service.listener_close import accept_queue_emptied, refuse_new_connections
from service.observability import metrics
from service.settings import Settings

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05  # how often the drain schedule looks at the orders it got
STARTUP_FAILURE = 3  # the exit code when the app could not start (uvicorn exits with it too)


class DrainingServer(uvicorn.Server):
    """A ``uvicorn.Server`` whose shutdown goes through the drain window.

    With ``obey_signals`` (one process) SIGTERM and SIGINT are orders; without (a worker), the signals that
    reach the process are ignored and :meth:`drain` / :meth:`stop` are called by whoever supervises it.
    Every order only sets a flag (signal handlers and other threads may give them); a task on the event
    loop carries them out.
    """

    def __init__(self, config: uvicorn.Config, drain_seconds: float, obey_signals: bool = True) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.obey_signals = obey_signals
        self.drain_ordered_at: float | None = None  # time.monotonic() of the drain order
        self.stop_ordered = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's signal handler: no logging here (the log lock may be held); the schedule reports.
        if not self.obey_signals:
            return
        if sig == signal.SIGTERM and self.drain_ordered_at is None and not self.stop_ordered:
            self.drain()
        elif sig == signal.SIGINT and self.stop_ordered:
            self.force()
        else:
            self.stop()

    def drain(self) -> None:
        """Start the drain window (readiness turns 503 at once); a second order changes nothing."""
        if self.drain_ordered_at is None:
            lifecycle.begin_draining()
            self.drain_ordered_at = time.monotonic()

    def stop(self) -> None:
        """Close the listener now and finish the requests in flight."""
        self.stop_ordered = True
        self.should_exit = True

    def force(self) -> None:
        """Stop without waiting for the requests in flight."""
        self.stop()
        self.force_exit = True

    async def serve(self, sockets: Any = None) -> None:
        schedule = asyncio.create_task(self._follow_orders())
        try:
            await super().serve(sockets=sockets)
        finally:
            schedule.cancel()
        if self.started and (self.stop_ordered or self.drain_ordered_at is not None):
            # uvicorn logs (and cancels) whatever still ran after timeout_graceful_shutdown.
            logger.info("drained: the listener is closed and the requests in flight are done; exiting")

    async def shutdown(self, sockets: Any = None) -> None:
        """uvicorn's shutdown, once the accept queue is emptied and its requests answered: closing a
        listener with connections in its queue resets them (:mod:`service.listener_close`)."""
        if self.started and not self.force_exit:
            listeners = [listener for server in self.servers for listener in server.sockets]
            if listeners and all(refuse_new_connections(listener) for listener in listeners):
                await accept_queue_emptied(listeners)  # the event loop accepts what the queue holds
        await super().shutdown(sockets=sockets)

    async def _follow_orders(self) -> None:
        while self.drain_ordered_at is None:
            if self.should_exit:
                return
            await asyncio.sleep(_POLL_SECONDS)
        metrics.set_draining(True)
        logger.info(
            "SIGTERM: draining; /readyz answers 503, requests are still served for %.1f s", self.drain_seconds
        )
        window_ends = self.drain_ordered_at + self.drain_seconds
        while time.monotonic() < window_ends:
            if self.should_exit:
                logger.info("drain window cut short: no new connections; finishing the requests in flight")
                return
            await asyncio.sleep(_POLL_SECONDS)
        logger.info("drain window over: no new connections; finishing the requests in flight")
        self.stop()


def grace_seconds(settings: Settings) -> float:
    """The longest a SIGTERM'd server takes to exit: the drain window, then the longest a request may run
    (plus a second of margin). A container's termination grace period must be at least this."""
    return settings.drain_seconds + math.ceil(settings.request_timeout_seconds) + 1


def listening_socket(settings: Settings, log_config: dict[str, Any]) -> socket.socket:
    """The bound listening socket for ``settings`` (and logging set up), without loading the app: what a
    supervisor needs, which serves nothing itself."""
    config = uvicorn.Config(
        "service.api.app:create_app",  # never loaded here
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        log_level=settings.log_level,
    )
    return config.bind_socket()


def uvicorn_config(settings: Settings, log_config: dict[str, Any]) -> uvicorn.Config:
    """One server process's uvicorn configuration; the app is built from ``settings`` in that process."""
    from service.api.app import create_app

    return uvicorn.Config(
        functools.partial(create_app, settings),
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        log_level=settings.log_level,
        access_log=False,  # service.access logs one line per request, with its request id
        http=protocol_class(http_limits(settings)),  # httptools, with a cap on the head and read deadlines
        # After the drain window, requests in flight get as long as their own deadline to finish.
        timeout_graceful_shutdown=math.ceil(settings.request_timeout_seconds) + 1,
    )


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_head_bytes=settings.max_head_bytes,
        max_headers=settings.max_headers,
        head_timeout_seconds=settings.head_timeout_seconds,
        body_timeout_seconds=settings.body_timeout_seconds,
    )
