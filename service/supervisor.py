"""``--workers N``: a small supervisor over N :class:`~service.server.DrainingServer` processes.

The supervisor binds the listening socket, starts the workers (``spawn``: fresh interpreters that build
their app from the :class:`~service.settings.Settings` handed to them) and turns the signals *it* receives
into orders it sends each worker over a pipe: the first SIGTERM is *drain*, a second SIGTERM or a SIGINT
is *stop*, a SIGINT after that is *force* (see :mod:`service.server`). Workers ignore SIGTERM and SIGINT
themselves, so a signal sent to the whole process group (systemd's ``KillMode=control-group``, Ctrl-C,
``kill -- -PGID``) has the same effect as one sent to the supervisor alone: one drain schedule, not a
second signal that would cut it short. A worker whose supervisor is gone (its pipe closes) stops.

When the drain starts the supervisor closes its own copy of the socket: the socket closes when the last
worker's drain ends, so later connections are refused rather than left queued where nobody accepts them.
A worker that dies while serving is replaced; one that fails at start-up stops the service (exit 3).

``/metrics`` describes the whole server, whichever worker answers: the supervisor gives the workers a
fresh folder in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode: each worker keeps its
values in memory-mapped files there, and a scrape adds them up), clears a dead worker's gauges, and
removes the folder when it exits (see :mod:`service.observability.metrics`). Likewise the workers' admin log
lives in a folder only the service's user can use, created here for each run and removed at exit
(:mod:`service.engine.workers_folder`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from service.engine import workers_folder
from service.observability.metrics import MULTIPROCESS_FOLDER_VARIABLE
from service.server import STARTUP_FAILURE, DrainingServer, listening_socket, uvicorn_config
from service.settings import Settings

logger = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")
_WAKE_SECONDS = 0.05  # how often the supervisor looks at the signals it got
_GROUP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_ORDERS = ("drain", "stop", "force")
METRICS_PREFIX = "lstm-service-metrics-"


def _follow_supervisor(orders: Connection, server: DrainingServer) -> None:
    """A worker's thread: carry out the supervisor's orders; a closed pipe means *stop*."""
    while True:
        try:
            order = orders.recv()
        except (EOFError, OSError):
            server.stop()
            return
        if order in _ORDERS:
            getattr(server, order)()


def _worker(
    settings: Settings, log_config: dict[str, Any], listener: socket.socket, orders: Connection
) -> None:
    """A worker process: one uvicorn server on the supervisor's socket, steered by the supervisor."""
    for signum in _GROUP_SIGNALS:  # inherited as ignored at start; stays so after uvicorn restores it
        signal.signal(signum, signal.SIG_IGN)
    server = DrainingServer(uvicorn_config(settings, log_config), settings.drain_seconds, obey_signals=False)
    threading.Thread(target=_follow_supervisor, args=(orders, server), daemon=True).start()
    try:
        server.run(sockets=[listener])
    finally:  # whatever ends the worker, the access lines it still holds are written first
        logging.shutdown()
    raise SystemExit(0 if server.started else STARTUP_FAILURE)


@dataclass
class _Worker:
    process: BaseProcess
    orders: Connection

    def tell(self, order: str) -> None:
        try:
            self.orders.send(order)
        except OSError:  # it has exited already
            pass


class _Supervisor:
    def __init__(self, settings: Settings, log_config: dict[str, Any]) -> None:
        self.settings = settings
        self.log_config = log_config
        self.listener = listening_socket(settings, log_config)
        self.workers: list[_Worker] = []
        self.signals: list[int] = []  # received, not yet acted on
        self.order_given: str | None = None

    def _start_worker(self) -> _Worker:
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_worker,
            args=(self.settings, self.log_config, self.listener, theirs),
            name="lstm-service-worker",
        )
        # The worker inherits "ignored" for the group's signals, so none ends it while it starts.
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in _GROUP_SIGNALS}
        try:
            process.start()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        theirs.close()
        return _Worker(process, ours)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)  # acted on by the loop: no logging inside a signal handler

    def _order_for(self, signum: int) -> str:
        if signum == signal.SIGTERM and self.order_given is None:
            return "drain"
        if signum == signal.SIGINT and self.order_given == "stop":
            return "force"
        return "stop"

    def _give(self, order: str) -> None:
        if order == self.order_given or (order == "drain" and self.order_given is not None):
            return
        if self.order_given is None:
            self.listener.close()  # the workers hold their own copies until their listeners close
            cause = "SIGTERM" if order == "drain" else "stop"
            logger.info("%s: telling %d workers to %s", cause, len(self.workers), order)
        self.order_given = order
        for worker in self.workers:
            worker.tell(order)

    def run(self) -> int:
        self.workers = [self._start_worker() for _ in range(self.settings.workers)]
        pids = ", ".join(str(worker.process.pid) for worker in self.workers)
        logger.info("supervisor [%d]: %d workers started [%s]", os.getpid(), len(self.workers), pids)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _GROUP_SIGNALS}
        try:
            return self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.listener.close()

    def _supervise(self) -> int:
        exit_code = 0
        while self.workers:
            wait([worker.process.sentinel for worker in self.workers], timeout=_WAKE_SECONDS)
            while self.signals:
                self._give(self._order_for(self.signals.pop(0)))
            for worker in [w for w in self.workers if not w.process.is_alive()]:
                self.workers.remove(worker)
                worker.orders.close()
                _forget_metrics_of(worker.process.pid)
                code = worker.process.exitcode
                if self.order_given is not None:
                    if code != 0:
                        logger.error("worker %d exited with %s while stopping", worker.process.pid, code)
                        exit_code = exit_code or 1
                    continue
                if code == STARTUP_FAILURE:
                    logger.error("a worker could not start; stopping the others")
                    self._give("stop")
                    exit_code = STARTUP_FAILURE
                    continue
                logger.error(
                    "worker %d exited with %s while serving; starting another", worker.process.pid, code
                )
                self.workers.append(self._start_worker())
        return exit_code


def _forget_metrics_of(pid: int | None) -> None:
    """A dead worker's live gauges (requests in flight, queued texts) leave the sums; counters stay."""
    if pid is not None and os.environ.get(MULTIPROCESS_FOLDER_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def supervise(settings: Settings, log_config: dict[str, Any]) -> int:
    """Serve with ``settings.workers`` processes until told to stop; 0 after a clean shutdown."""
    # The workers inherit the environment: each writes its metrics into this server's own folder, and
    # shares its admin log with the others in another (both owner-only, made by mkdtemp).
    # Both are named after this supervisor's pid, so that the next server removes them if this one is
    # killed with SIGKILL (and cannot remove them itself).
    folders: dict[str, str] = {}
    try:
        folders[MULTIPROCESS_FOLDER_VARIABLE] = str(workers_folder.create_folder(METRICS_PREFIX))
        folders[workers_folder.FOLDER_VARIABLE] = str(workers_folder.create_folder())
    except OSError as error:  # no usable temporary folder: read-only, full or missing
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        logger.error(
            "--workers %d needs a writable temporary folder (for the workers' shared metrics and admin log) "
            "and none could be made: %s. Mount a writable folder at /tmp (docker run --tmpfs /tmp, a "
            "Kubernetes emptyDir), point TMPDIR at one, or serve with --workers 1.",
            settings.workers,
            error,
        )
        return STARTUP_FAILURE
    logger.info("the workers share the admin folder %s", folders[workers_folder.FOLDER_VARIABLE])
    previous = {variable: os.environ.get(variable) for variable in folders}
    os.environ.update(folders)
    try:
        return _Supervisor(settings, log_config).run()
    finally:
        for variable, value in previous.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
