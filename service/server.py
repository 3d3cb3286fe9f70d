"""Running uvicorn with a drain window: SIGTERM turns readiness to 503 at once, the server keeps answering
for ``drain_seconds`` (so load balancers notice and stop sending), then stops accepting, finishes every
request in flight (up to ``request_timeout_seconds``, past which no request may run anyway) and exits 0.

- One process: :class:`DrainingServer` (a ``uvicorn.Server`` whose SIGTERM handler starts the drain
  instead of the shutdown).
- ``--workers N``: uvicorn's own supervisor; on SIGTERM it sends SIGTERM to every worker and waits for
  them, and each worker runs a :class:`DrainingServer`. uvicorn 0.54 has no hook for the worker's server
  class, so :func:`_workers_drain` swaps the supervisor module's ``Process`` for a subclass while it runs.

A second SIGTERM (or a SIGINT) during the drain skips the rest of the window; uvicorn's own handling
(a second SIGINT forces the exit) is unchanged.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from service import lifecycle
from service.observability import metrics
from service.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._drain_until: float | None = None
        self._drain_logged = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_until is None and not self.should_exit:
            # A signal handler: no logging here (the log lock may be held); on_tick reports it.
            lifecycle.begin_draining()
            self._drain_until = time.monotonic() + self.drain_seconds
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and not self.should_exit:
            if not self._drain_logged:
                self._drain_logged = True
                metrics.set_draining(True)
                logger.info(
                    "SIGTERM: draining; /readyz answers 503, requests are still served for %.1f s",
                    self.drain_seconds,
                )
            if time.monotonic() >= self._drain_until:
                logger.info("drain window over: no new connections; finishing the requests in flight")
                self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: Any = None) -> None:
        in_flight = len(self.server_state.tasks)
        await super().shutdown(sockets=sockets)
        # uvicorn cancels (and logs) whatever still runs after timeout_graceful_shutdown.
        logger.info("drained: %d request(s) were in flight when the listener closed; exiting", in_flight)


class _DrainingProcess(multiprocess.Process):
    """A uvicorn worker process that runs a :class:`DrainingServer` (its settings come from the
    environment, like the app's in that process)."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(self.config, get_settings().drain_seconds)
        return self._server


class _DrainingMultiprocess(multiprocess.Multiprocess):
    """uvicorn's supervisor, which also lets go of the listening socket once the workers got SIGTERM:
    the socket closes when the last worker's drain ends, so late connections are refused, not left
    queued on a socket nobody will accept from (and reset when the supervisor exits)."""

    def terminate_all(self) -> None:
        super().terminate_all()
        for socket in self.sockets:
            socket.close()


@contextmanager
def _workers_drain() -> Iterator[None]:
    original = getattr(multiprocess, "Process", None)
    if not isinstance(getattr(original, "server", None), property):  # another uvicorn than 0.54's
        logger.warning("this uvicorn's workers cannot drain: SIGTERM stops them without a drain window")
        yield
        return
    multiprocess.Process = _DrainingProcess  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]


def grace_seconds(settings: Settings) -> float:
    """The longest a SIGTERM'd server takes to exit: the drain window, then the longest a request may run
    (plus a second of margin). A container's termination grace period must be at least this."""
    return settings.drain_seconds + math.ceil(settings.request_timeout_seconds) + 1


def run(settings: Settings, log_config: dict[str, Any]) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean shutdown, 3 if the server could not start."""
    config = uvicorn.Config(
        "service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config,
        log_level=settings.log_level,
        access_log=False,  # service.access logs one line per request, with its request id
        # After the drain window, requests in flight get as long as their own deadline to finish.
        timeout_graceful_shutdown=math.ceil(settings.request_timeout_seconds) + 1,
    )
    if settings.workers > 1:
        socket = config.bind_socket()
        with _workers_drain():
            _DrainingMultiprocess(config, sockets=[socket]).run()
        return 0
    server = DrainingServer(config, settings.drain_seconds)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
