"""The one error vocabulary of the service: the kinds, their status codes and the exception family.

Standard library only, so the engine can raise these without knowing HTTP exists. Every error answer has
the body ``{"error": "<message>", "error_type": "<kind>"}`` (built by :mod:`service.api.errors`). The kinds
are a closed set (:class:`ErrorType`); the status code of each kind is written here and nowhere else.
Messages are short and stable; details (traces, paths) go to the log only.
"""

from __future__ import annotations

from enum import Enum


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
    conflict = "conflict"  # a change refused by the state it would change (a promotion the evidence refutes)


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
    ErrorType.conflict: 409,
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
    """The message names the credential expected and how to send it, never whether the one offered was
    missing or wrong."""

    error_type = ErrorType.unauthorized

    def __init__(self, headers: dict[str, str] | None = None, expected: str | None = None) -> None:
        super().__init__("unauthorized" + (f": send {expected}" if expected else ""), headers)


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


class Conflict(ServiceError):
    error_type = ErrorType.conflict


def safe_text(text: str, limit: int = 500) -> str:
    """Printable, valid UTF-8, bounded: a message may quote client input (lone surrogates included)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"
