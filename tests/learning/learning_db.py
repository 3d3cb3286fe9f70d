"""The PostgreSQL side of the prediction log's tests: the test server's URL, a schema's URL, and a TCP
forwarder a test can cut (a real network outage, new connections refused and open ones reset, without
touching the database server other tests share)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

PG_SERVER = os.environ.get("LSTM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def admin_connection() -> Any:
    """An autocommit psycopg connection to the test server; skips without one (fails under CI)."""
    import psycopg

    try:
        return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {PG_SERVER}: {error}")


def pg_url(schema: str) -> str:
    return f"{PG_SERVER}?options=-csearch_path%3D{schema}"


def server_address() -> tuple[str, int]:
    host, port = PG_SERVER.split("@", 1)[1].split("/", 1)[0].split(":")
    return host, int(port)


class CuttableProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.cut.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def disconnect(self) -> None:
        """Refuse new connections and reset every open one, until :meth:`reconnect`."""
        self.cut.set()
        with self._lock:
            for connection in self._open:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

    def reconnect(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self._stopped = True
        self.disconnect()
        self.listener.close()
