"""The prediction log's queue and writer: off the request path, bounded, and self-healing.

:meth:`PredictionLog.note` (called by the engine after each answered classification) costs a sampling
draw and a ``put_nowait`` of references; rows are built, hashed and written by one background thread in
batches of up to ``BATCH_ROWS``. When the sink fails, the writer keeps the batch it holds and retries it
with a growing pause (inserts skip rows already written, so a retry never doubles one), while new answers
fill the queue; past ``prediction_log_buffer`` answers they are dropped and counted
(``lstm_service_prediction_log_records_total{outcome="dropped"}``), and the log says so at most once a
minute. At shutdown :meth:`close` writes what is queued, within its timeout.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from service.observability.context import RECORD, REQUEST_ID
from service.predictions.jsonl import JsonlSink
from service.predictions.records import Answered, TextMode, rows
from service.settings import Settings

if TYPE_CHECKING:
    from service.predictions.sql import SqlStore

logger = logging.getLogger(__name__)

BATCH_ROWS = 500
GATHER_SECONDS = 0.05
PRUNE_SECONDS = 60.0
COMPLAIN_SECONDS = 60.0
_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)

RECORDS = Counter(
    "lstm_service_prediction_log_records",
    "Answered texts by what the prediction log did with them: written, dropped (buffer full), failed "
    "(never written before shutdown).",
    ("outcome",),
)
BUFFERED = Gauge(
    "lstm_service_prediction_log_buffered",
    "Answers waiting in the prediction log's buffer.",
    multiprocess_mode="livesum",
)
SINK_UP = Gauge(
    "lstm_service_prediction_log_sink_up",
    "1 while the prediction log's last write succeeded, 0 while its sink fails.",
    multiprocess_mode="min",
)


class PredictionLog:
    def __init__(
        self,
        sink: SqlStore | JsonlSink,
        *,
        text_mode: TextMode = "full",
        sample: float = 1.0,
        models: frozenset[str] = frozenset(),
        buffer: int = 10_000,
        retention_seconds: float = 0.0,
        max_rows: int = 0,
    ) -> None:
        self.sink = sink
        # feedback, quality and the queue need SQL
        self.store: SqlStore | None = None if isinstance(sink, JsonlSink) else sink
        self.text_mode = text_mode
        self.sample = sample
        self.models = models
        self.retention_seconds = retention_seconds
        self.max_rows = max_rows
        self._queue: queue.Queue[Answered | None] = queue.Queue(maxsize=buffer)
        self._held: list[tuple[Any, ...]] = []  # rows taken from the queue, not yet written
        self._held_answers = 0
        self._queued = 0  # answers queued so far
        self._finished = 0  # answers written so far
        self._sink_up = True
        self._abandoned = False
        self._dropped_since_complaint = 0
        self._last_complaint = 0.0
        self._written = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        SINK_UP.set(1)

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionLog | None:
        url = settings.prediction_log
        if url is None:
            return None
        sink = JsonlSink(url) if url.startswith("jsonl://") else _sql_store(url, settings.prediction_log_text)
        return cls(
            sink,
            text_mode=settings.prediction_log_text,
            sample=settings.prediction_log_sample,
            models=frozenset(settings.prediction_log_models),
            buffer=settings.prediction_log_buffer,
            retention_seconds=settings.prediction_log_retention_days * 86_400,
            max_rows=settings.prediction_log_max_rows,
        )

    # -- the request path -------------------------------------------------------------------------------

    def note(
        self,
        runtime: Any,
        texts: list[str],
        scores: Any,
        seconds: float,
        *,
        request_id: str | None = None,
        route: str | None = None,
        alias: str | None = None,
    ) -> None:
        """Queue one answered request (never blocks, never raises for the sink's sake); the request id,
        route and alias are the current request's unless given (a shadow run gives its own)."""
        if (self.models and runtime.name not in self.models) or (
            self.sample < 1.0 and random.random() >= self.sample
        ):
            return
        record = RECORD.get()
        if record is not None:
            route = route or record.route
            alias = alias if alias is not None else record.alias
        answered = Answered(
            request_id or REQUEST_ID.get(), time.time(), runtime.name, runtime.version, runtime.labels,
            runtime.multi_label, runtime.decide if runtime.multi_label else None, texts, scores,
            seconds * 1000.0, route or "-", alias,
        )  # fmt: skip
        try:
            self._queue.put_nowait(answered)
            self._queued += 1  # the event loop's thread only; read by flush()
        except queue.Full:
            RECORDS.labels("dropped").inc(len(texts))
            self._dropped_since_complaint += len(texts)

    # -- the writer thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        next_prune = time.monotonic() + PRUNE_SECONDS
        failures = 0
        while not self._abandoned:
            if not self._held:
                self._take(block=not self._closing.is_set())
                if not self._held and self._closing.is_set():
                    return
            if self._held:
                if self._write():
                    failures = 0
                else:
                    failures += 1
                    time.sleep(_RETRY_SECONDS[min(failures, len(_RETRY_SECONDS)) - 1])
            self._complain()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_SECONDS
                self._prune()

    def _take(self, block: bool) -> None:
        try:
            first = self._queue.get(timeout=0.2) if block else self._queue.get_nowait()
        except queue.Empty:
            return
        answers = [first]
        # Gather for a moment: a commit per answer would cost more than the rows (SQLite syncs on commit).
        self._closing.wait(GATHER_SECONDS)
        while sum(len(a.texts) for a in answers if a is not None) < BATCH_ROWS:
            try:
                answers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        BUFFERED.set(self._queue.qsize())
        for answered in answers:
            if answered is not None:
                self._held.extend(rows(answered, self.text_mode))
                self._held_answers += 1

    def _write(self) -> bool:
        try:
            self.sink.write(self._held)
        except Exception as error:  # noqa: BLE001 - any sink failure: keep the rows, retry
            if self._sink_up:
                logger.warning("prediction log: writing to the sink failed (%s); retrying", _brief(error))
            self._sink_up = False
            SINK_UP.set(0)
            return False
        if not self._sink_up:
            logger.warning("prediction log: the sink is back; writing resumed")
        self._sink_up = True
        SINK_UP.set(1)
        RECORDS.labels("written").inc(len(self._held))
        with self._written:
            self._finished += self._held_answers
            self._held, self._held_answers = [], 0
            self._written.notify_all()
        return True

    def _complain(self) -> None:
        now = time.monotonic()
        if self._dropped_since_complaint and now - self._last_complaint >= COMPLAIN_SECONDS:
            logger.warning(
                "prediction log: %d record(s) dropped in the last minute (the buffer of %d answers was full; "
                "the sink is slow or down)", self._dropped_since_complaint, self._queue.maxsize,
            )  # fmt: skip
            self._dropped_since_complaint = 0
            self._last_complaint = now

    def _prune(self) -> None:
        if self.retention_seconds <= 0 and self.max_rows <= 0:
            return
        try:
            removed = self.sink.prune(self.retention_seconds, self.max_rows)
        except Exception as error:  # noqa: BLE001 - pruning waits for the next round
            logger.warning("prediction log: pruning failed (%s)", _brief(error))
            return
        if removed:
            logger.info("prediction log: pruned %d record(s)", removed)

    # -- control ----------------------------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until every answer queued before the call is written (False: not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        target = self._queued
        with self._written:
            while self._finished < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._written.wait(min(left, 0.05))
        return True

    def close(self, timeout: float) -> None:
        """Write what is queued (within ``timeout`` seconds), then stop the writer and close the sink."""
        self._closing.set()
        self._thread.join(timeout)
        self._abandoned = True  # a writer still retrying a dead sink stops at its next turn
        lost = len(self._held) + sum(len(a.texts) for a in _drain(self._queue))
        if lost:
            RECORDS.labels("failed").inc(lost)
            logger.warning("prediction log: %d record(s) not written at shutdown (the sink failed)", lost)
        self.sink.close()


def _sql_store(url: str, text_mode: TextMode) -> SqlStore:
    """The SQL sink; SQLAlchemy and psycopg come with the ``log`` extra, imported only for a SQL log."""
    try:
        from service.predictions.sql import SqlStore
    except ImportError as error:
        raise RuntimeError(
            f"LSTM_SERVICE_PREDICTION_LOG={url.split('://')[0]}://... needs SQLAlchemy and psycopg: "
            f"pip install 'lstm-service[log]' ({error})"
        ) from error
    return SqlStore(url, text_mode)


def _drain(pending: queue.Queue[Answered | None]) -> list[Answered]:
    answers: list[Answered] = []
    while True:
        try:
            answered = pending.get_nowait()
        except queue.Empty:
            return answers
        if answered is not None:
            answers.append(answered)


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
