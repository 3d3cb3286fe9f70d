"""The prologue every text route shares: check the texts against the limits, find the model version,
note it on the request record, and tokenize."""

from __future__ import annotations

from service.api.deps import Services
from service.api.schemas import TextsRequest
from service.engine.preprocess import check_texts
from service.engine.runtime import ModelRuntime
from service.observability.context import note_model
from service.tokenizer import Encoding


def resolve_model(request: TextsRequest, services: Services, max_texts: int) -> ModelRuntime:
    """The model version that answers ``request``, once its texts are within the limits.

    Raises :class:`service.errors.InvalidRequest` (too many texts, a text too long) or the registry's
    errors (unknown model or version, model not ready).
    """
    check_texts(request.items, request.locations, max_texts, services.settings.max_text_chars)
    runtime = services.registry.get(request.model, request.version)
    note_model(runtime.name, runtime.version)
    return runtime


async def prepare_texts(
    request: TextsRequest, services: Services, *, max_texts: int, require_tokens: bool, spans: bool = True
) -> tuple[ModelRuntime, list[Encoding]]:
    """:func:`resolve_model`, then the request's texts tokenized for that model.

    ``require_tokens``: the model will run on the texts, so each needs a token; ``spans=False``: ids only
    (see :func:`service.engine.preprocess.encode_texts`).
    """
    runtime = resolve_model(request, services, max_texts)
    encodings = await services.inference.encode(
        runtime,
        request.items,
        request.locations,
        request.truncate,
        require_tokens=require_tokens,
        spans=spans,
    )
    return runtime, encodings
