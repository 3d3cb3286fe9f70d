"""The error vocabulary (:mod:`service.errors`) turned into HTTP answers, and the handlers that route every
error FastAPI, Starlette or our code raises to the one body shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.api.responses import OrjsonResponse
from service.errors import STATUS_CODES, ErrorType, ServiceError, safe_text

_MAX_REPORTED_ERRORS = 3
_MAX_FRAGMENT_CHARS = 80


def error_body(error_type: ErrorType, message: str) -> dict[str, str]:
    return {"error": safe_text(message), "error_type": error_type.value}


def error_response(error_type: ErrorType, message: str, headers: dict[str, str] | None = None) -> Response:
    return OrjsonResponse(error_body(error_type, message), STATUS_CODES[error_type], headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part)[:_MAX_FRAGMENT_CHARS] for part in loc if part != "body"]
    return ".".join(parts) or "body"


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """``"texts.3: String should have at least 1 character; ..."``; malformed JSON gets one fixed message."""
    if any(error.get("type") == "json_invalid" for error in errors):
        return "request body is not valid JSON"
    described = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        described.append(f"{_location(tuple(error.get('loc', ())))}: {message}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        described.append(f"(and {len(errors) - _MAX_REPORTED_ERRORS} more)")
    return "; ".join(described)


async def _service_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return error_response(error.error_type, error.message, error.headers)


async def _validation_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return error_response(ErrorType.validation, describe_validation_errors(list(error.errors())))


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 404:
        return error_response(ErrorType.not_found, f"no route {request.url.path}", headers)
    if error.status_code == 405:
        return error_response(ErrorType.method_not_allowed, f"method {request.method} not allowed", headers)
    if error.status_code == 400:  # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8)
        return error_response(ErrorType.validation, "request body is not valid JSON", headers)
    kind = next((kind for kind, code in STATUS_CODES.items() if code == error.status_code), None)
    if kind is None:
        kind = ErrorType.validation if error.status_code < 500 else ErrorType.internal
    message = error.detail if isinstance(error.detail, str) else kind.value
    return error_response(kind, message, headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the framework or our code raises to one body shape.

    Unexpected exceptions are answered (500, generic message) by the request middleware, which also
    logs them with their trace; see :mod:`service.api.middleware`.
    """
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
