"""The one error vocabulary of the service and its mapping to HTTP status codes.

Every error answer has the body ``{"error": "<message>", "error_type": "<kind>"}``. The kinds are a closed
set (:class:`ErrorType`); the status code of each kind is written here and nowhere else. Messages are short
and stable; details (traces, paths) go to the log only.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.responses import OrjsonResponse

logger = logging.getLogger(__name__)

_MAX_REPORTED_ERRORS = 3
_MAX_FRAGMENT_CHARS = 80


class ErrorType(str, Enum):
    validation = "validation"
    invalid_bundle = "invalid_bundle"  # an admin load refused the bundle; the version serving stays
    unauthorized = "unauthorized"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    payload_too_large = "payload_too_large"
    overloaded = "overloaded"
    internal = "internal"
    unavailable = "unavailable"
    timeout = "timeout"


STATUS_CODES: dict[ErrorType, int] = {
    ErrorType.validation: 422,
    ErrorType.invalid_bundle: 422,
    ErrorType.unauthorized: 401,
    ErrorType.not_found: 404,
    ErrorType.method_not_allowed: 405,
    ErrorType.payload_too_large: 413,
    ErrorType.overloaded: 429,
    ErrorType.internal: 500,
    ErrorType.unavailable: 503,
    ErrorType.timeout: 504,
}
INTERNAL_MESSAGE = "internal error; the server log has the details (search for the request id)"


class ServiceError(Exception):
    """An error the client should see; raise a subclass and the handler answers with its kind."""

    error_type = ErrorType.internal

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(ServiceError):
    error_type = ErrorType.validation


class Unauthorized(ServiceError):
    """No details on purpose: the message never says whether a credential was missing or wrong."""

    error_type = ErrorType.unauthorized

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__("unauthorized", headers)


class NotFound(ServiceError):
    error_type = ErrorType.not_found


class PayloadTooLarge(ServiceError):
    error_type = ErrorType.payload_too_large


class Overloaded(ServiceError):
    error_type = ErrorType.overloaded


class Unavailable(ServiceError):
    error_type = ErrorType.unavailable


class DeadlineExceeded(ServiceError):
    error_type = ErrorType.timeout


def error_body(error_type: ErrorType, message: str) -> dict[str, str]:
    return {"error": safe_text(message), "error_type": error_type.value}


def error_response(error_type: ErrorType, message: str, headers: dict[str, str] | None = None) -> Response:
    return OrjsonResponse(error_body(error_type, message), STATUS_CODES[error_type], headers=headers)


def safe_text(text: str, limit: int = 500) -> str:
    """Printable, valid UTF-8, bounded: a message may quote client input (lone surrogates included)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    logs them with their trace; see :mod:`service.middleware`.
    """
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
