"""SIGTERM while clients keep sending past the drain window: every connection the server accepted gets an
answer, none is reset. Closing a listener resets the connections in its accept queue; the server first
stops new connections with a socket filter, answers what the queue holds, then closes it
(:mod:`service.listener_close`). Clients that come later are refused, as by any stopped server."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from support.live_server import LiveServer, Load

from service.listener_close import accept_queue, refuse_new_connections

DRAIN_SECONDS = 1.0
REPETITIONS = 2  # each run reset 6-7 connections before the fix; docs/operations.md has 20-run figures
CLIENTS = 8
STOPS = 20  # the acceptance figure: 0 resets in 20 stops
SHORT_DRAIN_SECONDS = 0.2  # what matters is the listener's close, not the window's length


def _livez(_: int) -> tuple[str, str, None]:
    return "GET", "/livez", None


def _stop_under_load(store: Path, log: Path, flags: list[str]) -> Load:
    """Start a server, send until it has answered 100, SIGTERM its group, keep sending until it stops
    listening: what the clients saw."""
    server = LiveServer.start(store, log, flags)
    load = Load(server.port, _livez, clients=CLIENTS, max_requests=100_000).start()
    try:
        load.wait_for(100, deadline_seconds=60)
        server.terminate(group=True)
        code = server.process.wait(timeout=60)
        assert code == 0, f"the server exited with {code}:\n{server.log_text()[-3000:]}"
        load.stop()
    finally:
        server.kill()
    return load


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_with_clients_sending_past_the_drain_resets_nothing(
    tiny_store: Path, tmp_path: Path, workers: str
) -> None:
    for repetition in range(REPETITIONS):
        flags = ["--workers", workers, "--drain-seconds", str(DRAIN_SECONDS)]
        load = _stop_under_load(tiny_store, tmp_path / f"server-{repetition}.log", flags)
        failed = [outcome.error for outcome in load.outcomes if outcome.status is None]
        assert failed == [], (
            f"run {repetition}: {len(failed)} of {len(load.outcomes)} accepted, then: {failed[:3]}"
        )
        assert {outcome.status for outcome in load.outcomes} == {200}
        assert load.refused == CLIENTS  # every client sent until the server stopped listening


@pytest.mark.slow
def test_twenty_stops_with_clients_sending_past_the_drain_reset_nothing(
    tiny_store: Path, tmp_path: Path
) -> None:
    """20 stops, one and two workers in turn, a drain window of 0.2 s, 8 clients sending until refused:
    0 connections accepted and then reset or dropped, in total. Without the socket filter the same run
    had 147 resets in about 17,600 answers. About 50 s on 2 shared cores (2.4 s a stop, mostly starting
    the server)."""
    failed: list[str] = []
    answered = 0
    for stop in range(STOPS):
        flags = ["--workers", str(1 + stop % 2), "--drain-seconds", str(SHORT_DRAIN_SECONDS)]
        load = _stop_under_load(tiny_store, tmp_path / f"server-{stop}.log", flags)
        failed += [f"stop {stop}: {o.error}" for o in load.outcomes if o.status is None]
        answered += len(load.outcomes)
        statuses = {outcome.status for outcome in load.outcomes}
        assert statuses <= {200, None}, f"stop {stop}: answered {statuses}"
        assert load.refused == CLIENTS, f"stop {stop}: {load.refused} of {CLIENTS} clients ended refused"
    assert failed == [], f"{len(failed)} of {answered} accepted requests got no answer: {failed[:5]}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux socket filter")
def test_the_filter_leaves_queued_connections_and_refuses_new_ones() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        port = listener.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), timeout=5)
        queued.sendall(b"ping")
        assert refuse_new_connections(listener)
        late = socket.socket()
        late.settimeout(0.5)
        with pytest.raises(OSError):  # its SYN is dropped: no handshake while the listener stays open
            late.connect(("127.0.0.1", port))
        late.close()
        accepted, _ = listener.accept()  # the connection queued before the filter is still there
        assert accepted.recv(4) == b"ping"
        accepted.sendall(b"pong")
        assert queued.recv(4) == b"pong"
        accepted.close()
        queued.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO of a listener")
def test_the_accept_queue_length_is_read_from_the_kernel_and_a_handshake_under_way_completes() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        port = listener.getsockname()[1]
        assert accept_queue(listener) == 0
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        second = socket.create_connection(("127.0.0.1", port), timeout=5)
        deadline = time.monotonic() + 5
        while accept_queue(listener) != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert accept_queue(listener) == 2
        assert refuse_new_connections(listener)
        for _ in range(2):
            accepted, _ = listener.accept()
            accepted.close()
        assert accept_queue(listener) == 0
        first.close()
        second.close()
