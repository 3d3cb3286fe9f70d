"""``POST /classify`` as plain ASGI: the hot route skips FastAPI's router, dependencies and exception layers.

Under load, FastAPI's per-request machinery (route matching over every route, dependency solving, the
exception and exit-stack middlewares, body re-parsing) cost more CPU than the model (py-spy on bench/).
This middleware sits inside the request-context and body-limit middlewares (so request ids, deadlines,
timing headers, metrics, the access log line and the body limit stay as they are) and answers
``POST /classify`` itself with :func:`service.api.routes.classify.classify_texts`, the code the FastAPI route
runs. The FastAPI route still exists: it documents the API in the OpenAPI schema and answers any request
this class passes on.

Parsing matches FastAPI's: the body is decoded as JSON (orjson; the stdlib's decoder on anything orjson
refuses, so NaN, huge integers and lone surrogates are judged exactly as FastAPI judges them), an empty
body is a missing body, and validation errors are described by the same function.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import describe_validation_errors, error_response
from service.api.responses import OPTIONS
from service.api.routes import classify
from service.api.routes.classify import classify_texts
from service.api.schemas import ClassifyRequest
from service.api.security import require_api_key
from service.errors import ErrorType, ServiceError

PATH = "/classify"
# What the router would put in scope["route"]: the request middleware labels metrics with its path.
_ROUTE = next(route for route in classify.router.routes if getattr(route, "path", None) == PATH)
_JSON_HEADER = (b"content-type", b"application/json")


class _NotJson(Exception):
    pass


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # what FastAPI does (Request.json): NaN, 1e400, lone surrogates and big integers parse
        return json.loads(body)
    except Exception:  # FastAPI answers any failure here (deep nesting: RecursionError) as not JSON
        raise _NotJson from None


def parse_classify(body: bytes) -> ClassifyRequest:
    """The request model for ``body``, or a 422 with the message FastAPI's handler would give."""
    if not body:
        raise _Invalid("body: Field required")
    try:
        data = _decode(body)
    except _NotJson:
        raise _Invalid("request body is not valid JSON") from None
    try:
        return ClassifyRequest.model_validate(data, from_attributes=True)  # as FastAPI validates
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise _Invalid(describe_validation_errors(errors)) from None


class _Invalid(ServiceError):
    error_type = ErrorType.validation


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; None if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClassifyFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings = state.settings
        scope["route"] = _ROUTE
        try:
            if settings.api_key is not None:
                require_api_key(Request(scope))
            body = await _read_body(receive)
            if body is None:
                return  # the client left; nobody to answer
            request = parse_classify(body)
            content = await classify_texts(request, state.registry, state.inference, settings)
        except ServiceError as error:
            await error_response(error.error_type, error.message, error.headers)(scope, receive, send)
            return
        payload = orjson.dumps(content, option=OPTIONS)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(payload)).encode()), _JSON_HEADER],
            }
        )
        await send({"type": "http.response.body", "body": payload})
