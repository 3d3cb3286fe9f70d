"""POST /feedback, GET /models/{name}/quality, GET /labelling/queue and GET /labelling/export.

Thin: each checks its input, runs one query of the prediction log's SQL store in a worker thread
(:mod:`service.predictions.sql`) and encodes the answer. Without a SQL prediction log they answer 404.
"""

from __future__ import annotations

import csv
import io
import time
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.common import error_responses
from service.api.deps import ServicesDep
from service.api.learning.schemas import FeedbackRequest, FeedbackResponse, QualityResponse, QueueResponse
from service.api.responses import OrjsonResponse
from service.engine.registry import Registry
from service.engine.runtime import ModelRuntime
from service.errors import NotFound
from service.predictions import quality
from service.predictions.log import PredictionLog
from service.predictions.records import FeedbackItem

if TYPE_CHECKING:
    from service.predictions.sql import SqlStore

router = APIRouter(tags=["learning"])
FLUSH_SECONDS = 2.0  # feedback on an answer still in the log's buffer waits this long for it
_ERRORS = error_responses(404, 422, 503)


def _store(log: PredictionLog | None) -> SqlStore:
    if log is None or log.store is None:
        raise NotFound(
            "no SQL prediction log on this server: set LSTM_SERVICE_PREDICTION_LOG to a sqlite:/// or "
            "postgresql:// URL (see docs/learning.md)"
        )
    return log.store


async def _written(log: PredictionLog | None) -> None:
    """Let the answers given before this request reach the sink (up to FLUSH_SECONDS), so that a caller
    reads what it has just been answered."""
    if log is not None:
        await run_in_threadpool(log.flush, FLUSH_SECONDS)


def _serving(registry: Registry, name: str | None) -> ModelRuntime:
    return registry.get(name)  # 404 for an unknown model, 503 for one not ready


@router.post("/feedback", response_model=FeedbackResponse, responses=_ERRORS)
async def post_feedback(body: FeedbackRequest, services: ServicesDep) -> Response:
    """The true label(s) of logged answers (by X-Request-ID) or of texts; a batch is stored all or none."""
    log = services.engine.predictions
    store = _store(log)
    items = [
        FeedbackItem(e.true_labels(), e.request_id, e.item, e.text, e.model, e.source) for e in body.entries()
    ]

    def labels_of(name: str) -> list[str]:
        return list(_serving(services.registry, name).labels)

    try:
        stored = await run_in_threadpool(store.add_feedback, items, labels_of)
    except NotFound:
        assert log is not None
        if not await run_in_threadpool(log.flush, FLUSH_SECONDS):
            raise
        stored = await run_in_threadpool(
            store.add_feedback, items, labels_of
        )  # the answer may be written now
    return OrjsonResponse({"stored": stored})


@router.get("/models/{name}/quality", response_model=QualityResponse, responses=_ERRORS)
async def get_quality(
    name: str,
    services: ServicesDep,
    window_hours: Annotated[float, Query(gt=0, le=24 * 366, description="Feedback of the last hours.")] = 168,
) -> Response:
    """Live quality of each logged version of a model, from the feedback on its answers."""
    store = _store(services.engine.predictions)
    runtime = _serving(services.registry, name)
    await _written(services.engine.predictions)
    rows = await run_in_threadpool(store.judged, runtime.name, time.time() - window_hours * 3600)
    versions = quality.by_version(runtime.name, rows, runtime.multi_label)
    return OrjsonResponse(
        {
            "model": runtime.name,
            "window_hours": window_hours,
            "multi_label": runtime.multi_label,
            "versions": versions,
        }
    )


@router.get("/labelling/queue", response_model=QueueResponse, responses=_ERRORS)
async def get_queue(
    services: ServicesDep,
    model: Annotated[str | None, Query(max_length=128, description="Default: the default model.")] = None,
    strategy: Annotated[Literal["margin", "entropy", "disagreement"], Query()] = "margin",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Response:
    """Logged texts without feedback, one per distinct text, most useful to label first."""
    store = _store(services.engine.predictions)
    runtime = _serving(services.registry, model)
    await _written(services.engine.predictions)
    ranked = await run_in_threadpool(store.queue, runtime.name, strategy, limit)
    keys = (
        "request_id",
        "item",
        "text",
        "version",
        "scores",
        "labels",
        "margin",
        "entropy",
        "seen",
        "answers",
    )
    return OrjsonResponse(
        {
            "model": runtime.name,
            "labels": list(runtime.labels),
            "multi_label": runtime.multi_label,
            "strategy": strategy,
            "items": [{key: row[key] for key in keys} for row in ranked],
        }
    )


@router.get(
    "/labelling/export",
    responses={**_ERRORS, 200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    response_class=Response,
)
async def get_export(
    services: ServicesDep,
    model: Annotated[str | None, Query(max_length=128, description="Default: the default model.")] = None,
    format: Annotated[Literal["csv", "jsonl"], Query()] = "csv",
) -> Response:
    """The labelled texts in the training format (`text,label`; several labels joined by `|`), the latest
    label per text: the input of `lstm-train train --feedback`."""
    store = _store(services.engine.predictions)
    runtime = _serving(services.registry, model)
    await _written(services.engine.predictions)
    labelled = await run_in_threadpool(store.labelled, runtime.name)
    if format == "jsonl":
        body = b"".join(
            orjson.dumps({"text": text, "label": labels if runtime.multi_label else labels[0]}) + b"\n"
            for text, labels in labelled
            if labels or runtime.multi_label
        )
        return Response(body, media_type="application/x-ndjson")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows((text, "|".join(labels)) for text, labels in labelled if labels or runtime.multi_label)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
