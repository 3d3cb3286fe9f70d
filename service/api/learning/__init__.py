"""The learning routes: feedback on logged answers, live quality, the labelling queue, its export and the
labelling page (:func:`include` adds them all to the app)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.api.learning import page, routes


def include(app: FastAPI, guarded: dict[str, Any]) -> None:
    """The API routes with the inference routes' credential (``guarded``); the page's static files open,
    like /inspect's (the page asks for the key and sends it with its own requests)."""
    app.include_router(routes.router, **guarded)
    app.include_router(page.router)
