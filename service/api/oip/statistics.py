"""Triton's statistics extension: ``$model_stat`` objects from the process's per-model totals.

``inference_count``, ``execution_count``, ``queue``, ``compute_infer`` and ``batch_stats`` count every
model call of the version, whichever route asked for it (``/classify``'s batches included); ``success``
and ``fail`` count the requests of the routes that record them (``/v2/.../infer`` and ``/predict``).
Tokenizing is reported as ``compute_input``: not measured apart, so 0. One worker's totals: with
``--workers N`` each worker keeps its own, like the Prometheus metrics.
"""

from __future__ import annotations

from typing import Any

from service.engine.runtime import ModelRuntime
from service.engine.statistics import Statistics


def _duration(pair: list[int]) -> dict[str, int]:
    return {"count": pair[0], "ns": pair[1]}


_ZERO = {"count": 0, "ns": 0}


def model_stat(runtime: ModelRuntime, statistics: Statistics) -> dict[str, Any]:
    totals = statistics.totals(runtime.name, runtime.version)
    return {
        "name": runtime.name,
        "version": str(runtime.version),
        "last_inference": totals.last_inference_ms,
        "inference_count": totals.inference_count,
        "execution_count": totals.execution_count,
        "inference_stats": {
            "success": _duration(totals.success),
            "fail": _duration(totals.fail),
            "queue": _duration(totals.queue),
            "compute_input": _ZERO,
            "compute_infer": _duration(totals.compute_infer),
            "compute_output": _ZERO,
            "cache_hit": _ZERO,
            "cache_miss": _ZERO,
        },
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": _ZERO,
                "compute_infer": _duration(pair),
                "compute_output": _ZERO,
            }
            for size, pair in sorted(totals.batches.items())
        ],
    }
