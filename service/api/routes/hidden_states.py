"""POST /hidden-states."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import InferenceDep, RegistryDep, SettingsDep
from service.api.responses import OrjsonResponse
from service.api.routes.tokenize import token_list
from service.api.schemas import ERROR_RESPONSES, HiddenStatesRequest, HiddenStatesResponse
from service.engine.preprocess import check_texts
from service.observability.context import note_model

router = APIRouter(tags=["inspection"])


@router.post("/hidden-states", response_model=HiddenStatesResponse, responses=ERROR_RESPONSES)
async def hidden_states(
    request: HiddenStatesRequest, registry: RegistryDep, inference: InferenceDep, settings: SettingsDep
) -> Response:
    """The LSTM's hidden state at every token (all directions) and its final h_n and c_n."""
    texts, locations = request.items, request.locations
    check_texts(texts, locations, settings.max_vector_texts, settings.max_text_chars)
    runtime = registry.get(request.model, request.version)
    note_model(runtime.name, runtime.version)
    encodings = await inference.encode(runtime, texts, locations, request.truncate, require_tokens=True)
    states = await inference.hidden_states(runtime, [encoding.ids for encoding in encodings])
    # h_n, c_n: (layers * directions, batch, hidden) → per text (layers * directions, hidden)
    layers_by_directions, _, hidden_dim = states.h_n.shape
    directions = states.per_text[0].shape[1] // hidden_dim  # hidden_states: (tokens, hidden * directions)
    results = [
        {
            "tokens": token_list(encoding),
            "hidden_states": per_text,
            "h_n": states.h_n[:, row].copy(),  # copy: orjson serialises only contiguous arrays
            "c_n": states.c_n[:, row].copy(),
            "truncated": encoding.truncated,
        }
        for row, (encoding, per_text) in enumerate(zip(encodings, states.per_text, strict=True))
    ]
    payload = {
        "model": runtime.name,
        "version": runtime.version,
        "num_layers": layers_by_directions // directions,
        "directions": directions,
        "hidden_dim": hidden_dim,
    }
    return OrjsonResponse({**payload, "results": results})
