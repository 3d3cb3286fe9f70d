"""Prometheus metrics (``GET /metrics``) and the small functions the rest of the service records them with.

Every name starts with ``lstm_service_``. Model metrics carry ``model`` and ``version`` labels; request
metrics carry the route *template* (``/models/{name}``), never the raw path, so a scan of random URLs
cannot grow the label set (unmatched paths are counted as ``route="unmatched"``).

With ``--workers N`` the metrics describe the whole server, whichever worker answers the scrape:
prometheus_client's multiprocess mode, in the folder the supervisor names in ``PROMETHEUS_MULTIPROC_DIR``
(:mod:`service.supervisor`). Counters and histograms are summed over the workers; the gauges say how they
combine (``multiprocess_mode``: in-flight requests, queued texts and the workers serving a model version are
summed over live workers, the draining flag is the largest value); ``lstm_service_worker_info`` has one series
per live worker. The readiness and training-drift families are read at scrape time from the answering worker's
registry (every worker serves the same models). Recording a value costs the same in both modes (a lock and a
store; in multiprocess mode the store is into a memory-mapped file).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from service.observability import load_metrics
from service.tokenizer import Encoding

_PREFIX = "lstm_service_"
_MODEL = ("model", "version")
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(_PREFIX + "requests", "HTTP requests answered.", ("route", "method", "status"))
REQUEST_SECONDS = Histogram(
    _PREFIX + "request_duration_seconds", "Time to answer a request.", ("route", "method"), buckets=_SECONDS
)
# prometheus_client's multiprocess folder, set by the supervisor of --workers N (None: one process).
MULTIPROCESS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS_FOLDER = os.environ.get(MULTIPROCESS_FOLDER_VARIABLE) or None
IN_FLIGHT = Gauge(_PREFIX + "requests_in_flight", "Requests being answered now.", multiprocess_mode="livesum")
QUEUE_SECONDS = Histogram(
    _PREFIX + "queue_seconds", "Time a text waited for its batch to start.", _MODEL, buckets=_SECONDS
)
BATCH_SIZE = Histogram(
    _PREFIX + "batch_size",
    "Texts per batched model call.",
    _MODEL,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
BATCH_SECONDS = Histogram(
    _PREFIX + "batch_run_seconds", "Time of one batched model call.", _MODEL, buckets=_SECONDS
)
FAILED_BATCHES = Counter(_PREFIX + "failed_batches", "Batched model calls that raised.", _MODEL)
TOKENS_PER_TEXT = Histogram(
    _PREFIX + "tokens_per_text",
    "Tokens per text before truncation.",
    _MODEL,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
UNKNOWN_RATIO = Histogram(
    _PREFIX + "unknown_token_ratio",
    "Share of a text's tokens that are <unk>.",
    _MODEL,
    buckets=(0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
)
TRUNCATED = Counter(_PREFIX + "truncated_texts", "Texts cut to the model's max_length.", _MODEL)
MODEL_LOADS = Counter(
    _PREFIX + "model_loads",
    "Model versions opened and verified (kind: initial at start-up, reload later; outcome: loaded, failed).",
    ("model", "version", "kind", "outcome"),
)
MODEL_LOAD_SECONDS = Histogram(
    _PREFIX + "model_load_seconds",
    "Time to open and verify a model version.",
    ("model",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
SERVING = Gauge(
    _PREFIX + "model_serving",
    "Server processes that answer with this version of the model (1 with one process; 0: no longer).",
    _MODEL,
    multiprocess_mode="livesum",
)
DRAINING = Gauge(
    _PREFIX + "draining", "1 once SIGTERM was received and the server drains.", multiprocess_mode="livemax"
)
QUEUED = Gauge(_PREFIX + "queued_texts", "Texts waiting in the micro-batchers.", multiprocess_mode="livesum")
_WORKER_HELP = "1 for each server process (pid) serving."
if MULTIPROCESS_FOLDER is None:
    WORKER = Gauge(_PREFIX + "worker_info", _WORKER_HELP, ("pid",))
else:  # "liveall": prometheus_client labels each live process's series with its pid
    WORKER = Gauge(_PREFIX + "worker_info", _WORKER_HELP, multiprocess_mode="liveall")


# Labelled children, looked up once: ``labels()`` costs a lock, a tuple and a dict lookup per call, and
# these run for every request. The label values are as bounded as prometheus_client's own child cache.
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_ENCODING_CHILDREN: dict[tuple[str, int], tuple[Any, Any]] = {}
_BATCH_CHILDREN: dict[tuple[str, int], tuple[Any, Any, Any]] = {}


# Label values come from these sets only, so that no client can add series: any other method is "OTHER"
# (routes are templates already, or "unmatched").
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    if method not in KNOWN_METHODS:
        method = OTHER_METHOD
    key = (route, method, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = (REQUESTS.labels(route, method, str(status)), REQUEST_SECONDS.labels(route, method))
        _REQUEST_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


def observe_batch(
    model: str,
    version: int,
    size: int,
    queue_seconds: Iterable[float],
    run_seconds: float,
    failed: bool = False,
) -> None:
    """One batched model call: its size, how long each of its texts waited, how long it ran."""
    children = _BATCH_CHILDREN.get((model, version))
    if children is None:
        labels = (model, str(version))
        children = (BATCH_SIZE.labels(*labels), BATCH_SECONDS.labels(*labels), QUEUE_SECONDS.labels(*labels))
        _BATCH_CHILDREN[(model, version)] = children
    sizes, runs, queue = children
    sizes.observe(size)
    runs.observe(run_seconds)
    for seconds in queue_seconds:
        queue.observe(seconds)
    if failed:
        FAILED_BATCHES.labels(model, str(version)).inc()


def on_batch(runtime: Any, stats: Any) -> None:
    """``Inference(on_batch=...)``: one :class:`service.engine.batching.BatchStats` of a batcher."""
    if _queued is not None:  # multiprocess mode: no scrape-time function, the value is stored per batch
        QUEUED.set(_queued())
    observe_batch(
        runtime.name, runtime.version, stats.size, stats.queue_seconds, stats.run_seconds, stats.failed
    )


def observe_encodings(model: str, version: int, encodings: Sequence[Encoding]) -> None:
    """Tokens per text, share of unknown tokens, truncations."""
    children = _ENCODING_CHILDREN.get((model, version))
    if children is None:
        labels = (model, str(version))
        children = (TOKENS_PER_TEXT.labels(*labels), UNKNOWN_RATIO.labels(*labels))
        _ENCODING_CHILDREN[(model, version)] = children
    tokens, unknown = children
    truncated = 0
    for encoding in encodings:
        tokens.observe(encoding.num_tokens_before_truncation)
        if encoding.ids:
            unknown.observe(encoding.unknown_share)
        truncated += encoding.truncated
    if truncated:
        TRUNCATED.labels(model, str(version)).inc(truncated)


def observe_model_load(
    model: str, version: int | None, kind: str, loaded: bool, seconds: float | None = None
) -> None:
    outcome = "loaded" if loaded else "failed"
    MODEL_LOADS.labels(model, "none" if version is None else str(version), kind, outcome).inc()
    if seconds is not None:
        MODEL_LOAD_SECONDS.labels(model).observe(seconds)


def set_serving(model: str, version: int | None, previous: int | None = None) -> None:
    """``version`` of ``model`` answers from now on (None: unloaded); ``previous`` stops answering."""
    if previous is not None and previous != version:
        if MULTIPROCESS_FOLDER is not None:  # a series cannot leave the shared files: it goes to 0
            SERVING.labels(model, str(previous)).set(0)
        else:
            try:
                SERVING.remove(model, str(previous))
            except KeyError:  # never set in this process
                pass
    if version is not None:
        SERVING.labels(model, str(version)).set(1)


class _ModelReadiness:
    """``model_ready{model,version,state}``: one series per model the registry knows, failed ones included
    (1 when ready, else 0; ``state`` says which), read from the registry at scrape time."""

    def __init__(self) -> None:
        self.statuses: Callable[[], Mapping[str, Any]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            _PREFIX + "model_ready",
            "1 if the model serves, else 0, with its state (ready, failed...) and the version concerned.",
            labels=("model", "version", "state"),
        )
        refused = GaugeMetricFamily(
            _PREFIX + "model_version_refused",
            "1 for a newer version refused at load (failed verification) while an older one serves; the "
            "reason and how to recover are on /models/{name}.",
            labels=("model", "version"),
        )
        for name, status in (self.statuses() if self.statuses is not None else {}).items():
            version = "none" if status.version is None else str(status.version)
            family.add_metric(
                (name, version, status.state.value), 1.0 if status.state.value == "ready" else 0.0
            )
            if getattr(status, "failed_version", None) is not None:
                refused.add_metric((name, str(status.failed_version)), 1.0)
        yield family
        yield refused


_MODEL_READINESS = _ModelReadiness()
REGISTRY.register(_MODEL_READINESS)


def track_models(statuses: Callable[[], Mapping[str, Any]]) -> None:
    """Read the models' states from ``statuses()`` (the registry's) at scrape time; the last call wins."""
    _MODEL_READINESS.statuses = statuses


class _TrainingDrift:
    """The training split's quantiles of the two per-text figures above, per serving model, read from the
    manifests at scrape time: ``training_unknown_token_ratio`` and ``training_tokens_per_text``, each with
    ``quantile`` 0.1, 0.5, 0.9, 0.99 (models whose manifest has no record export nothing)."""

    QUANTILES = (("0.1", "p10"), ("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))

    def __init__(self) -> None:
        self.registry: Any = None

    def _serving(self) -> Iterator[tuple[str, int, Mapping[str, Any]]]:
        registry = self.registry
        if registry is None:
            return
        for name, status in registry.statuses().items():
            if status.state.value != "ready":
                continue
            try:
                runtime = registry.get(name)
            except Exception:  # unloaded or replaced since the listing: skip it this scrape
                continue
            drift = runtime.manifest.drift
            if drift is not None:
                yield runtime.name, runtime.version, drift.to_dict()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ("model", "version", "quantile")
        ratio = GaugeMetricFamily(
            _PREFIX + "training_unknown_token_ratio",
            "Quantiles of the share of <unk> tokens per text on the model's training split.",
            labels=labels,
        )
        tokens = GaugeMetricFamily(
            _PREFIX + "training_tokens_per_text",
            "Quantiles of the tokens per text (before truncation) on the model's training split.",
            labels=labels,
        )
        for name, version, drift in self._serving():
            for family, key in ((ratio, "unknown_token_ratio"), (tokens, "tokens_per_text")):
                spread = drift.get(key) or {}
                for quantile, field_name in self.QUANTILES:
                    if isinstance(spread.get(field_name), int | float):
                        family.add_metric((name, str(version), quantile), float(spread[field_name]))
        yield ratio
        yield tokens


_TRAINING_DRIFT = _TrainingDrift()
REGISTRY.register(_TRAINING_DRIFT)


def track_training_drift(registry: Any) -> None:
    """Export the training quantiles of the models ``registry`` serves, read at scrape time."""
    _TRAINING_DRIFT.registry = registry


def set_draining(draining: bool) -> None:
    DRAINING.set(1 if draining else 0)


_queued: Callable[[], float] | None = None


def track_queue(queued: Callable[[], float]) -> None:
    """Report the batchers' queue length: read at scrape time, or after every batch in multiprocess mode
    (a scrape cannot call into other processes). Also marks this process as a serving worker."""
    global _queued
    (WORKER.labels(str(os.getpid())) if MULTIPROCESS_FOLDER is None else WORKER).set(1)
    if MULTIPROCESS_FOLDER is None:
        QUEUED.set_function(queued)
    else:
        _queued = queued


_SERVER_REGISTRY: CollectorRegistry | None = None


def _server_registry() -> CollectorRegistry:
    """Multiprocess mode: every worker's values, from the shared folder, and this worker's scrape-time
    families (readiness, training drift)."""
    global _SERVER_REGISTRY
    if _SERVER_REGISTRY is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_FOLDER)
        registry.register(_MODEL_READINESS)
        registry.register(_TRAINING_DRIFT)
        registry.register(load_metrics.WorkerProcesses(str(MULTIPROCESS_FOLDER)))
        _SERVER_REGISTRY = registry
    return _SERVER_REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: of the whole server (every worker) in multiprocess mode."""
    load_metrics.sample_now()  # this worker's load gauges as of now (the others' are at most 1 s old)
    registry = REGISTRY if MULTIPROCESS_FOLDER is None else _server_registry()
    return generate_latest(registry), CONTENT_TYPE_LATEST
