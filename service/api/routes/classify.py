"""POST /classify.

Two doors, one room: :func:`classify_texts` does the work. The FastAPI route documents the API (OpenAPI)
and answers through FastAPI's machinery; :class:`service.api.hotpath.ClassifyFastPath` answers the same
requests as plain ASGI (same parsing, same checks, same errors), because FastAPI's router, dependency
injection and exception layers cost more per request than the model itself under load (bench/, py-spy).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import InferenceDep, RegistryDep, SettingsDep
from service.api.responses import OrjsonResponse
from service.api.schemas import CLASSIFY_ERROR_RESPONSES, ClassifyRequest, ClassifyResponse
from service.engine.inference import Inference
from service.engine.preprocess import check_texts
from service.engine.registry import Registry
from service.observability.context import note_model
from service.settings import Settings

router = APIRouter(tags=["inference"])


@router.post("/classify", response_model=ClassifyResponse, responses=CLASSIFY_ERROR_RESPONSES)
async def classify(
    request: ClassifyRequest, registry: RegistryDep, inference: InferenceDep, settings: SettingsDep
) -> Response:
    """Classify one text or several: the best label, its probability, and every label's probability."""
    return OrjsonResponse(await classify_texts(request, registry, inference, settings))


async def classify_texts(
    request: ClassifyRequest, registry: Registry, inference: Inference, settings: Settings
) -> dict[str, Any]:
    """The answer to a parsed request, as plain data; raises :class:`service.errors.ServiceError`."""
    texts, locations = request.items, request.locations
    check_texts(texts, locations, settings.max_texts, settings.max_text_chars)
    runtime = registry.get(request.model, request.version)
    note_model(runtime.name, runtime.version)
    encodings = await inference.encode(
        runtime, texts, locations, request.truncate, require_tokens=True, spans=False
    )
    probabilities = await inference.classify(runtime, [encoding.ids for encoding in encodings])
    labels = runtime.labels
    results = []
    for encoding, row in zip(encodings, probabilities.tolist(), strict=True):
        best = max(range(len(labels)), key=row.__getitem__)
        results.append(
            {
                "label": labels[best],
                "score": row[best],
                "scores": dict(zip(labels, row, strict=True)),
                "truncated": encoding.truncated,
            }
        )
    return {"model": runtime.name, "version": runtime.version, "results": results}
