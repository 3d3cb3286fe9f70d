"""The service's error kinds as gRPC status codes, and the API key as ``authorization`` metadata.

A :class:`~service.errors.ServiceError` ends the call with the status code of its kind and its message
(the same message the HTTP routes put in ``error``); the kind itself travels in the trailing metadata
``error-type``. Anything else is logged in full and answered INTERNAL with the generic message. Every
call is recorded as an HTTP request is (:mod:`service.api.oip_grpc.calls`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from pydantic import SecretStr

from service.api.middleware import CLIENT_CLOSED_REQUEST
from service.api.oip_grpc.calls import recorded
from service.errors import INTERNAL_MESSAGE, ErrorType, NotFound, ServiceError, Unauthorized
from service.errors import STATUS_CODES as HTTP_STATUS_CODES

logger = logging.getLogger(__name__)

# HTTP's 422 is a bad argument, 413 and 429 are resources used up (gRPC's own mapping of 429), 504 is
# a deadline exceeded.
STATUS_CODES: dict[ErrorType, grpc.StatusCode] = {
    ErrorType.validation: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorType.invalid_bundle: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorType.unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    ErrorType.not_found: grpc.StatusCode.NOT_FOUND,
    ErrorType.method_not_allowed: grpc.StatusCode.UNIMPLEMENTED,
    ErrorType.payload_too_large: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorType.overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorType.internal: grpc.StatusCode.INTERNAL,
    ErrorType.unavailable: grpc.StatusCode.UNAVAILABLE,
    ErrorType.timeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}
API_KEY_EXPECTED = "the API key in the metadata 'authorization: Bearer <key>' or 'x-api-key: <key>'"
ADMIN_EXPECTED = "the admin token in the metadata 'authorization: Bearer <LSTM_SERVICE_ADMIN_TOKEN>'"

Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]


def answered(handler: Handler[Servicer, Request, Response]) -> Handler[Servicer, Request, Response]:
    """Wrap an RPC method so that errors end the call with their status code and a clear message."""

    route = f"/inference.GRPCInferenceService/{handler.__name__}"

    async def call(servicer: Servicer, request: Request, context: grpc.aio.ServicerContext) -> Response:
        with recorded(route, context) as outcome:
            try:
                return await handler(servicer, request, context)
            except ServiceError as error:
                outcome.status = HTTP_STATUS_CODES[error.error_type]
                context.set_trailing_metadata((("error-type", error.error_type.value),))
                await context.abort(STATUS_CODES[error.error_type], error.message)
            except grpc.aio.AbortError:
                raise
            except asyncio.CancelledError:  # the caller went away or its deadline passed
                outcome.status = CLIENT_CLOSED_REQUEST
                raise
            except Exception:
                outcome.status = 500
                logger.exception("gRPC %s failed", handler.__name__)
                context.set_trailing_metadata((("error-type", ErrorType.internal.value),))
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    call.__name__ = handler.__name__
    call.__doc__ = handler.__doc__
    return call


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in context.invocation_metadata() or ()
        if isinstance(value, str)  # "-bin" keys carry bytes: never a credential
    }


def _bearer(metadata: dict[str, str]) -> str | None:
    scheme, _, credential = metadata.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def check_api_key(context: grpc.aio.ServicerContext, keys: tuple[SecretStr, ...]) -> None:
    """Refuse the call (UNAUTHENTICATED) unless it carries one of the API keys; nothing to do without any."""
    if not keys:
        return
    metadata = _metadata(context)
    offered = (_bearer(metadata), metadata.get("x-api-key"))
    if not any(_matches(credential, key) for credential in offered for key in keys):
        raise Unauthorized(expected=API_KEY_EXPECTED)


def check_token(context: grpc.aio.ServicerContext, token: SecretStr | None) -> None:
    """The admin token's calls: NOT_FOUND without a configured token (as HTTP's 404), else the token."""
    if token is None:
        raise NotFound("repository calls are off: no LSTM_SERVICE_ADMIN_TOKEN")
    if not _matches(_bearer(_metadata(context)), token):
        raise Unauthorized(expected=ADMIN_EXPECTED)


def _matches(offered: str | None, secret: SecretStr) -> bool:
    if not offered:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), secret.get_secret_value().encode())
