"""What every wire format shares: the rule for model names in bodies (versions in paths:
:mod:`service.api.validation`; both rules come from the bundle contract), and the standard error body
``{"error": ..., "error_type": ...}`` with its OpenAPI documentation."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from service.bundle import MAX_VERSION, NAME_PATTERN, is_valid_name
from service.errors import ErrorType
from service.rollout.state import ALIAS_PATTERN, is_alias


def _valid_model_name(name: str) -> str:
    if not is_valid_name(name):
        raise ValueError(
            "a model name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def integral_float_as_int(value: object) -> object:
    """JSON Schema's ``integer`` includes ``2.0``; strict mode would refuse it. ``2.5`` still fails."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _version_or_alias(value: object) -> int | str:
    """A version number (strict, as ``int`` fields are: ``2.0`` is 2, ``"2"`` and ``true`` are not) or an
    alias; every refusal has one message, the one a plain ``int`` field gives."""
    value = integral_float_as_int(value)
    if isinstance(value, str):
        if is_alias(value):
            return value
        raise PydanticCustomError("int_type", VERSION_OR_ALIAS)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if value < 1:
        raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 1")
    if value > MAX_VERSION:
        raise PydanticCustomError("less_than_equal", f"Input should be less than or equal to {MAX_VERSION}")
    return value


VERSION_OR_ALIAS = "Input should be a valid integer, or an alias that begins with a letter"
# A version in a body: its number, or an alias of the model's rollout (``stable``, ``canary``...).
VersionOrAlias = Annotated[
    int | str,
    PlainValidator(_version_or_alias),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                {"type": "string", "pattern": ALIAS_PATTERN.pattern},
            ]
        }
    ),
]

ModelName = Annotated[
    str, Field(json_schema_extra={"pattern": NAME_PATTERN.pattern}), AfterValidator(_valid_model_name)
]


class ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, for a human.")
    error_type: ErrorType = Field(description="The kind of error, for a program.")


_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong credential (API key or admin token)",
    404: "Unknown model or version",
    409: "Refused by the state it would change (a promotion the logged feedback refutes)",
    413: "Request body too large",
    422: "Invalid request",
    429: "Overloaded: too many texts queued or large answers in the making; retry after Retry-After seconds",
    503: "Model not available",
    504: "Deadline exceeded",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these status codes, each with the standard error body."""
    return {code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


ERROR_RESPONSES = error_responses(404, 413, 422, 503, 504)
# /classify goes through the micro-batcher, whose bounded queue refuses work with 429 (+ Retry-After).
CLASSIFY_ERROR_RESPONSES = error_responses(404, 413, 422, 429, 503, 504)
# /embed, /hidden-states: built within the worker's vector budget, which refuses work with 429 too.
VECTOR_ERROR_RESPONSES = CLASSIFY_ERROR_RESPONSES
