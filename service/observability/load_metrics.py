"""The metrics an autoscaler and an operator read to see how loaded a server is, beside
:mod:`service.observability.metrics`:

- ``lstm_service_model_queued_texts{model}``: texts waiting in each model's micro-batcher;
- ``lstm_service_vector_budget_bytes_in_use`` / ``lstm_service_vector_budget_bytes`` /
  ``lstm_service_vector_requests_waiting``: the vector budget reserved, its size, the requests queued for it;
- ``lstm_service_model_requests_total{model,route,status}`` and
  ``lstm_service_model_request_duration_seconds{model,route}``: requests a model answered, per model
  (``lstm_service_requests_total`` keeps its labels, so existing dashboards and alerts still match);
- ``lstm_service_build_info{version,python,onnxruntime}``: 1, with the versions running;
- with ``--workers N``, the ``process_*`` metrics of each worker and of the supervisor, labelled ``pid``.

The gauges are sampled (:class:`LoadSampler`): every second in each worker, and by the worker that
answers a scrape just before it renders, so a scrape never costs the request path anything and, with
``--workers N``, sums every worker's values no older than a second (``multiprocess_mode="livesum"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import platform
import re
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from service import __version__

logger = logging.getLogger(__name__)
_PREFIX = "lstm_service_"
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SAMPLE_SECONDS = 1.0

MODEL_QUEUED = Gauge(
    _PREFIX + "model_queued_texts",
    "Texts waiting in the model's micro-batcher (summed over workers).",
    ("model",),
    multiprocess_mode="livesum",
)
BUDGET_IN_USE = Gauge(
    _PREFIX + "vector_budget_bytes_in_use",
    "Bytes of /embed and /hidden-states answers reserved now (summed over workers).",
    multiprocess_mode="livesum",
)
BUDGET_LIMIT = Gauge(
    _PREFIX + "vector_budget_bytes",
    "The vector budget: LSTM_SERVICE_MAX_VECTOR_BYTES per worker (summed over workers).",
    multiprocess_mode="livesum",
)
BUDGET_WAITING = Gauge(
    _PREFIX + "vector_requests_waiting",
    "Vector requests waiting for the budget (summed over workers).",
    multiprocess_mode="livesum",
)
MODEL_REQUESTS = Counter(
    _PREFIX + "model_requests", "HTTP requests a model answered.", ("model", "route", "status")
)
MODEL_REQUEST_SECONDS = Histogram(
    _PREFIX + "model_request_duration_seconds",
    "Time to answer a request a model answered.",
    ("model", "route"),
    buckets=_SECONDS,
)
BUILD_INFO = Gauge(
    _PREFIX + "build_info",
    "1, labelled with the versions of the service, Python and onnxruntime running.",
    ("version", "python", "onnxruntime"),
    multiprocess_mode="max",
)
MODEL_EVICTIONS = Counter(
    _PREFIX + "model_evictions",
    "Models taken out of memory under the model budget (LSTM_SERVICE_MAX_LOADED_MODELS); their next request "
    'loads them again (model_loads_total{kind="lazy"}).',
    ("model",),
)
_MODEL_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_eviction(model: str) -> None:
    MODEL_EVICTIONS.labels(model).inc()


def _onnxruntime_version() -> str:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO.labels(__version__, platform.python_version(), _onnxruntime_version()).set(1)


def observe_model_request(model: str | None, route: str, status: int, seconds: float) -> None:
    """A request answered; counted per model when a model answered it (``model`` set)."""
    if model is None:
        return
    key = (model, route, status)
    children = _MODEL_CHILDREN.get(key)
    if children is None:
        children = (
            MODEL_REQUESTS.labels(model, route, str(status)),
            MODEL_REQUEST_SECONDS.labels(model, route),
        )
        _MODEL_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


class LoadSampler:
    """Copies the engine's load into the gauges: ``queued()`` (texts per model), ``budget`` (a
    :class:`service.engine.budget.VectorBudget`) and ``models()`` (the names served, whose gauges read 0
    when nothing waits)."""

    def __init__(
        self, queued: Callable[[], Mapping[str, int]], budget: Any, models: Callable[[], list[str]]
    ) -> None:
        self.queued, self.budget, self.models = queued, budget, models
        self._known: set[str] = set()

    def sample(self) -> None:
        by_model = dict.fromkeys([*self._known, *self.models()], 0)
        by_model.update(self.queued())
        for name, count in by_model.items():
            MODEL_QUEUED.labels(name).set(count)
        self._known = set(by_model)
        BUDGET_IN_USE.set(self.budget.in_flight)
        BUDGET_LIMIT.set(self.budget.limit)
        BUDGET_WAITING.set(self.budget.waiting)

    async def run(self, interval: float = SAMPLE_SECONDS) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        while True:
            try:
                self.sample()
            except Exception:  # a gauge must never stop the worker
                logger.exception("sampling the load gauges failed")
            await asyncio.sleep(interval)


_SAMPLERS: list[LoadSampler] = []


def track_load(sampler: LoadSampler) -> None:
    """Sample ``sampler`` before every scrape this process answers (the newest engine only)."""
    _SAMPLERS[:] = [sampler]


def sample_now() -> None:
    for sampler in _SAMPLERS:
        with contextlib.suppress(Exception):
            sampler.sample()


# ---- process metrics of every process of a --workers N server ------------------------------------------

_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def _live_pids(folder: Path) -> list[int]:
    """The workers whose live gauges are in the multiprocess folder (a dead one's are removed)."""
    pids = set()
    for path in folder.glob("gauge_live*_*.db"):
        match = _LIVE_FILE.fullmatch(path.name)
        if match:
            pids.add(int(match.group(1)))
    return sorted(pids)


class WorkerProcesses(Collector):
    """Multiprocess mode: ``process_*`` (CPU seconds, memory, open files, start time) of each live worker
    and of their supervisor, read from ``/proc`` at scrape time and labelled with the process's ``pid``
    (prometheus_client's own process collector describes only the process that answers)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _pids(self) -> list[int]:
        return sorted({os.getppid(), *_live_pids(self.folder)})

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self._pids():
            for family in ProcessCollector(pid=functools.partial(int, pid), registry=None).collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type, family.unit)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()
