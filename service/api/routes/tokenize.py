"""POST /tokenize."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import InferenceDep, RegistryDep, SettingsDep
from service.api.responses import OrjsonResponse
from service.api.schemas import ERROR_RESPONSES, TokenizeRequest, TokenizeResponse
from service.engine.preprocess import check_texts, is_unknown
from service.observability.context import note_model
from service.tokenizer import Encoding

router = APIRouter(tags=["inspection"])


def token_list(encoding: Encoding) -> list[dict[str, Any]]:
    """The tokens of an encoding in the wire shape of :class:`service.api.schemas.Token`."""
    return [
        {
            "id": token_id,
            "text": span.text,
            "start": span.start,
            "stop": span.stop,
            "unk": is_unknown(token_id),
        }
        for token_id, span in zip(encoding.ids, encoding.spans, strict=True)
    ]


@router.post("/tokenize", response_model=TokenizeResponse, responses=ERROR_RESPONSES)
async def tokenize(
    request: TokenizeRequest, registry: RegistryDep, inference: InferenceDep, settings: SettingsDep
) -> Response:
    """Split texts the way the model does: each token's id, text, offsets and whether it is unknown."""
    texts, locations = request.items, request.locations
    check_texts(texts, locations, settings.max_texts, settings.max_text_chars)
    runtime = registry.get(request.model, request.version)
    note_model(runtime.name, runtime.version)
    encodings = await inference.encode(runtime, texts, locations, request.truncate, require_tokens=False)
    results = [
        {
            "tokens": token_list(encoding),
            "truncated": encoding.truncated,
            "num_tokens": len(encoding.ids),
            "num_tokens_before_truncation": encoding.num_tokens_before_truncation,
        }
        for encoding in encodings
    ]
    return OrjsonResponse({"model": runtime.name, "version": runtime.version, "results": results})
