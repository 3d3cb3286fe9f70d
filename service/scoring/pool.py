"""The worker processes of ``lstm-service score --processes N``.

Each worker is a fresh interpreter (``python -m service.scoring.pool``) that opens one :class:`Scorer` and
turns texts into answer columns; the command's process (:class:`WorkerPool`) sends it pickled calls on its
standard input and reads the pickled results from its standard output, one call at a time per worker.
Nothing here imports pyarrow (the command's own process reads the input and writes the parts: pyarrow
added about 45 MB to each worker's resident memory), and there is no fork server or resource tracker
beside the workers (multiprocessing's pool kept both, 27 MB together). A worker ends when its input
closes: when the command finishes, fails or is killed.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from service.scoring.columns import ModelIdentity, ScoreOptions, ScoringError

if TYPE_CHECKING:
    from service.scoring.scorer import Scorer

_scorer: Scorer | ScoringError | None = None  # this worker process's
_LENGTH = struct.Struct("!Q")  # each message: its length, then its pickle
_STOP_SECONDS = 10.0  # how long a worker may take to finish its call once its input is closed


def open_scorer(store: Path, options: ScoreOptions) -> None:
    """Open the model once per worker."""
    global _scorer
    from service.scoring.scorer import Scorer

    logging.getLogger("service").setLevel(logging.WARNING)  # a worker has nothing to say about loading
    try:
        _scorer = Scorer(store, options)
    except ScoringError as error:  # kept to be raised by the first call, where the command reports it
        _scorer = error


def _ready() -> Scorer:
    if isinstance(_scorer, ScoringError):
        raise _scorer
    assert _scorer is not None, "the worker opens the scorer before its first call"
    return _scorer


def identity() -> tuple[ModelIdentity, list[tuple[str, str]]]:
    scorer = _ready()
    return scorer.identity, scorer.columns


def score_texts(texts: list[str | Any]) -> dict[str, Any]:
    """One chunk's answer columns (:meth:`Scorer.score`), sent back to the command's process."""
    return _ready().score(texts)


_CALLS: dict[str, Callable[..., Any]] = {"identity": identity, "score_texts": score_texts}


def _write(channel: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    channel.write(_LENGTH.pack(len(data)) + data)
    channel.flush()


def _read(channel: IO[bytes]) -> Any:
    """The next message, or EOFError when the other side closed the pipe (or died)."""
    head = channel.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    size = _LENGTH.unpack(head)[0]
    data = channel.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's loop: the scorer's settings first, then calls until the command closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle: it closes the pipe
    try:
        open_scorer(*_read(requests))
        while True:
            name, arguments = _read(requests)
            try:
                result: tuple[str, object] = ("ok", _CALLS[name](*arguments))
            except Exception as error:  # the command raises it where it waits for this call
                result = ("error", error if _picklable(error) else ScoringError(repr(error)))
            _write(answers, result)
    except (EOFError, BrokenPipeError):
        return


def _picklable(error: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self, store: Path, options: ScoreOptions) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.scoring.pool"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests: IO[bytes] = self.process.stdin
        self.answers: IO[bytes] = self.process.stdout
        _write(self.requests, (store, options))

    def call(self, name: str, arguments: tuple[Any, ...]) -> Any:
        try:
            _write(self.requests, (name, arguments))
            status, result = _read(self.answers)
        except (EOFError, OSError, ValueError):  # ValueError: the pool closed the pipe
            code = self.process.wait()
            raise ScoringError(
                f"a scoring worker stopped (exit status {code}); the chunks scored so far are kept: run "
                "the same command again to carry on where it stopped"
            ) from None
        if status == "error":
            raise result
        return result

    def stop(self) -> None:
        """Close the worker's input (it ends after its call), wait for it, kill it if it lingers."""
        try:
            self.requests.close()
        except OSError:
            pass  # a dead worker's pipe
        try:
            self.process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WorkerPool:
    """``processes`` workers, each with the model open; :meth:`submit` runs a call on the next free one.

    A call waits in one of as many threads as there are workers (the threads only wait on pipes).
    Leaving the ``with`` block closes the workers' input, waits for them, and kills any that linger.
    """

    def __init__(self, processes: int, store: Path, options: ScoreOptions) -> None:
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._threads = ThreadPoolExecutor(processes, thread_name_prefix="score-worker")
        try:
            for _ in range(processes):
                worker = _Worker(store, options)
                self._workers.append(worker)
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    def submit(self, name: str, *arguments: Any) -> Future[Any]:
        return self._threads.submit(self._call, name, arguments)

    def _call(self, name: str, arguments: tuple[Any, ...]) -> Any:
        worker = self._idle.get()
        try:
            return worker.call(name, arguments)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()  # a thread waiting on a worker's answer then sees its pipe end
        self._threads.shutdown(wait=True, cancel_futures=True)
        for worker in self._workers:
            worker.answers.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


if __name__ == "__main__":
    # The answers go to a copy of standard output; the original descriptor then points at standard
    # error, so that nothing else printed can corrupt a message.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
