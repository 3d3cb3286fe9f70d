"""The one body parser (service.api.bodies): what it accepts, how it refuses, and that the OpenAPI document
still declares every body it parses (FastAPI does not see a body a dependency reads)."""

from __future__ import annotations

import httpx
import pytest

from service.api.bodies import parse_body
from service.api.native.schemas import ClassifyRequest, LoadModelRequest
from service.errors import InvalidRequest


def _refusal(model: type, body: bytes, optional: bool = False) -> str:
    with pytest.raises(InvalidRequest) as refused:
        parse_body(model, body, optional=optional)
    return refused.value.message


def test_a_valid_body_becomes_the_request_model() -> None:
    parsed = parse_body(ClassifyRequest, b'{"texts": ["good", "bad"], "version": 2.0}')

    assert isinstance(parsed, ClassifyRequest)
    assert parsed.items == ["good", "bad"] and parsed.version == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body: Field required"),
        (b"{", "request body is not valid JSON"),
        (b'{"text": "\xff"}', "request body is not valid UTF-8: byte 10 is 0xff"),
        (b"[" * 5000 + b"]" * 5000, "request body is not valid JSON"),  # deeper than any decoder goes
        (
            b'{"text": "good", "version": NaN}',
            "version: Input should be a valid integer",
        ),  # parsed, then judged
        (b'{"text": "good", "extra": 1}', "extra: Extra inputs are not permitted"),
        (b"null", "body: Input should be a valid dictionary or object to extract fields from"),
    ],
)
def test_a_bad_body_is_refused_with_where_it_is_wrong(body: bytes, message: str) -> None:
    assert _refusal(ClassifyRequest, body).startswith(message)


def test_an_optional_body_may_be_empty_or_null_but_not_wrong() -> None:
    assert parse_body(LoadModelRequest, b"", optional=True) is None
    assert parse_body(LoadModelRequest, b"null", optional=True) is None
    assert parse_body(LoadModelRequest, b'{"version": 3}', optional=True) == LoadModelRequest(version=3)
    assert _refusal(LoadModelRequest, b'{"version": "3"}', optional=True).startswith("version:")


@pytest.mark.anyio
async def test_the_openapi_document_declares_every_parsed_body(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]

    for path, model in [
        ("/classify", "ClassifyRequest"),
        ("/tokenize", "TokenizeRequest"),
        ("/embed", "EmbedRequest"),
        ("/hidden-states", "HiddenStatesRequest"),
    ]:
        operation = spec["paths"][path]["post"]
        body = operation["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert schemas[model]["additionalProperties"] is False and "text" in schemas[model]["properties"]
        assert list(operation).index("requestBody") < list(operation).index("responses")
