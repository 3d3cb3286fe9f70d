"""Credentials checked from the headers before a body is read, so a client without them cannot make a
worker receive and hold a body (the routes check them again, in the same way, as they always did).

Every route that takes a body needs a credential: the admin routes (``/admin/...`` and the Open Inference
Protocol's ``/v2/repository/...``) the admin token, every other one the API key when one is configured
(a hot route says so itself: ``guarded``). A body-carrying request without its credential is answered
401 (404 for admin routes while they are off) whatever its path, as :mod:`service.api.security` answers
any missing credential: a request without one learns nothing about which paths exist.

The vector routes (``/embed``, ``/hidden-states``) are also refused here, 429 with ``Retry-After``, while
the worker's vector budget has its queue of waiters full: their admission would refuse them for that
reason after the body, so they are spared the body's reading and parsing, which made a refusal cost
tens of milliseconds of the event loop while clients retried at once.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.types import Scope

from service.api.hotpath import HotRoute
from service.api.security import require_admin, require_api_key
from service.settings import Settings

Check = Callable[[Request], None]
ADMIN_PREFIXES = ("/admin", "/v2/repository")  # the routes behind require_admin
VECTOR_PATHS = frozenset({"/embed", "/hidden-states"})  # answered within the vector budget


def _check_for(path: str) -> Check:
    """The credential a body-carrying request to ``path`` needs (no hot route matched it)."""
    for prefix in ADMIN_PREFIXES:
        if path == prefix or path.startswith(f"{prefix}/"):
            return require_admin
    return require_api_key


class Gate:
    """Which credential a request needs, decided from its path and headers alone."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self, scope: Scope, hot: HotRoute | None) -> None:
        """Raise the route's own refusal (401, or 404 for admin routes when they are off) for a request
        that lacks the credential its route needs; otherwise do nothing."""
        check: Check | None
        if hot is not None:
            check = require_api_key if hot.guarded else None
        else:
            check = _check_for(scope["path"])
        if check is require_api_key and self.settings.api_key is None:
            pass  # the common case without a key: no Request to build
        elif check is not None:
            check(Request(scope))
        if hot is None and scope["path"] in VECTOR_PATHS:
            _refuse_if_budget_full(scope)


def _refuse_if_budget_full(scope: Scope) -> None:
    state = getattr(scope.get("app"), "state", None)
    services = getattr(state, "services", None)  # None until the lifespan has built it
    if services is not None:
        services.engine.budget.refuse_if_full()
