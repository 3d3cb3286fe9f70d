"""The one JSON body parser of the service: every route with a body, FastAPI route or hot route, uses it.

:func:`parse_body` turns the bytes into the request model or raises
:class:`service.errors.InvalidRequest` (422) with a message that says where the body is wrong:

- an empty body is a missing body (``body: Field required``), unless the route's body is optional;
- the bytes are decoded as JSON by orjson, and by the standard library's decoder when orjson refuses them,
  so ``NaN``, ``1e400``, integers beyond 64 bits and lone surrogate escapes reach the model's validation
  (which refuses them with a field-level message); bytes that are not UTF-8 are told so, with the first
  bad byte; anything else neither accepts (bad syntax, nesting too deep) is ``request body is not valid
  JSON``;
- the model validates the data (strict, no unknown fields); its errors are described by
  :func:`service.api.errors.describe_validation_errors`.

FastAPI routes take their body with ``Annotated[Model, json_body(Model)]``: a dependency that reads the
body and calls :func:`parse_body`. FastAPI then no longer sees the model as the body, so the route declares
it for the OpenAPI document with ``openapi_extra=request_body(Model)``, and :func:`document_bodies` adds the
model's schema under ``components/schemas`` as FastAPI would have written it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from service.api.errors import describe_validation_errors
from service.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)
NOT_JSON = "request body is not valid JSON"
_REF_TEMPLATE = "#/components/schemas/{model}"


def decode_json(body: bytes) -> Any:
    """The JSON value of ``body``; :class:`InvalidRequest` if it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    if json.detect_encoding(body) == "utf-8":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidRequest(
                f"request body is not valid UTF-8: byte {error.start} is 0x{body[error.start]:02x}; "
                "send the JSON encoded as UTF-8"
            ) from None
    try:  # NaN, 1e400, lone surrogates and big integers: parsed here, judged by the model
        return json.loads(body)
    except Exception:  # bad syntax, nesting deeper than the recursion limit
        raise InvalidRequest(NOT_JSON) from None


def parse_body(model: type[M], body: bytes, *, optional: bool = False) -> M | None:
    """``body`` as ``model``; None for an empty or ``null`` body when the body is ``optional``."""
    if not body:
        if optional:
            return None
        raise InvalidRequest("body: Field required")
    data = decode_json(body)
    if data is None and optional:
        return None
    try:
        return model.model_validate(data, from_attributes=True)  # as FastAPI validates a body: same messages
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise InvalidRequest(describe_validation_errors(errors)) from None


class _BodyParser:
    """The dependency :func:`json_body` returns."""

    def __init__(self, model: type[BaseModel], optional: bool) -> None:
        self.model, self.optional = model, optional

    async def __call__(self, request: Request) -> Any:
        return parse_body(self.model, await request.body(), optional=self.optional)


def json_body(model: type[BaseModel], *, optional: bool = False) -> Any:
    """A parameter's ``Depends``: ``request: Annotated[ClassifyRequest, json_body(ClassifyRequest)]``."""
    return Depends(_BodyParser(model, optional))


# Models named in a request_body(), by name: document_bodies() adds the schemas of those the document uses.
_DOCUMENTED: dict[str, type[BaseModel]] = {}


def request_body(model: type[BaseModel], *, optional: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is ``model``: FastAPI does not see a dependency's body."""
    known = _DOCUMENTED.setdefault(model.__name__, model)
    if known is not model:
        raise ValueError(f"two request models are named {model.__name__}: {known!r} and {model!r}")
    schema: dict[str, Any] = {"$ref": _REF_TEMPLATE.format(model=model.__name__)}
    if optional:
        return {
            "requestBody": {
                "content": {
                    "application/json": {"schema": {"anyOf": [schema, {"type": "null"}], "title": "Request"}}
                }
            }
        }
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


def _referenced(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[1]
        for value in schema.values():
            yield from _referenced(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _referenced(value)


def document_bodies(app: FastAPI) -> None:
    """Make ``app.openapi()`` hold the schemas of the bodies declared with :func:`request_body`, and put
    each ``requestBody`` before ``responses`` as FastAPI does."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        bodies = [
            operation["requestBody"]
            for operations in schema.get("paths", {}).values()
            for operation in operations.values()
            if "requestBody" in operation
        ]
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        missing = [
            _DOCUMENTED[name]
            for name in _referenced(bodies)
            if name not in components and name in _DOCUMENTED
        ]
        if missing:
            _, definitions = models_json_schema(
                [(model, "validation") for model in missing], ref_template=_REF_TEMPLATE
            )
            components.update(definitions.get("$defs", {}))
            schema["components"]["schemas"] = dict(
                sorted(components.items())
            )  # sorted, as FastAPI writes them
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                if "requestBody" in operation:
                    operations[method] = _body_before_responses(operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _body_before_responses(operation: dict[str, Any]) -> dict[str, Any]:
    body = operation.pop("requestBody")
    ordered: dict[str, Any] = {}
    for key, value in operation.items():
        if key == "responses":
            ordered["requestBody"] = body
        ordered[key] = value
    ordered.setdefault("requestBody", body)
    return ordered
