"""Credentials: the admin bearer token and the optional API key, compared in constant time.

- Admin routes (``/admin/...``) need ``Authorization: Bearer <LSTM_SERVICE_ADMIN_TOKEN>``. Without a
  configured token they do not exist: 404, as for any unknown path (nothing to guess at).
- With ``LSTM_SERVICE_API_KEY`` set, inference and ``/models`` routes need ``Authorization: Bearer <key>``
  or ``X-API-Key: <key>``; ``LSTM_SERVICE_EXTRA_API_KEYS`` are accepted as well (rotation). Health routes
  stay open; ``/metrics`` and the API docs as ``LSTM_SERVICE_METRICS_ACCESS`` / ``DOCS_ACCESS`` say.

A missing or wrong credential gets the same 401, whose message names the header expected
(:data:`ADMIN_EXPECTED`, :data:`API_KEY_EXPECTED`): the answer never says which was the case, and every
comparison takes the same time whatever the prefix that matched.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr

from service.errors import NotFound, Unauthorized

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
ADMIN_EXPECTED = "the admin token in the header 'Authorization: Bearer <LSTM_SERVICE_ADMIN_TOKEN>'"
API_KEY_EXPECTED = "the API key in the header 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


def _bearer(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


def _matches(offered: str | None, secret: SecretStr) -> bool:
    if offered is None:
        return False
    # compare_digest wants two ASCII strs or two byte strings; UTF-8 bytes accept anything a header holds.
    return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), secret.get_secret_value().encode())


def require_admin(request: Request) -> None:
    """Dependency of the admin routes."""
    token: SecretStr | None = request.app.state.settings.admin_token
    if token is None:
        raise NotFound(f"no route {request.url.path} (admin routes are off: no LSTM_SERVICE_ADMIN_TOKEN)")
    if not _matches(_bearer(request), token):
        raise Unauthorized(_CHALLENGE, ADMIN_EXPECTED)


def require_api_key(request: Request) -> None:
    """Dependency of the inference and model routes; does nothing when no API key is configured."""
    keys: tuple[SecretStr, ...] = request.app.state.settings.api_keys()
    if not keys:
        return
    bearer, offered = _bearer(request), request.headers.get("x-api-key")
    # Every key is compared (a list, not a short-circuit): the time taken never says which key matched.
    matched = [_matches(bearer, key) or _matches(offered, key) for key in keys]
    if not any(matched):
        raise Unauthorized(_CHALLENGE, API_KEY_EXPECTED)
