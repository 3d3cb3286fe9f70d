"""Answers sent while the vector budget (:mod:`service.engine.budget`) still holds their reservation.

A vector answer (/embed, /hidden-states) with a ``results`` list last is sent one result at a time, the
same bytes as one ``orjson.dumps``, so its JSON never exists whole; the reservation is released once the
last byte is sent, or once sending failed, or as soon as building the answer fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service.api.responses import OPTIONS, OrjsonResponse
from service.engine.budget import Release

R = TypeVar("R")


async def _chunks(content: dict[str, Any]) -> AsyncIterator[bytes]:
    """``orjson.dumps(content)``, byte for byte, one result at a time (``results`` is the last key)."""
    head = orjson.dumps({key: value for key, value in content.items() if key != "results"}, option=OPTIONS)
    yield head[:-1] + (b',"results":[' if len(head) > 2 else b'"results":[')
    for index, result in enumerate(content["results"]):
        yield (b"," if index else b"") + orjson.dumps(result, option=OPTIONS)
    yield b"]}"


class _StreamedAnswer(StreamingResponse):
    """The answer sent as it is serialised; releases its reservation once sent (or once sending failed)."""

    def __init__(self, content: dict[str, Any], release: Release) -> None:
        self._release = release
        super().__init__(_chunks(content), media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class _ReleasingAnswer(OrjsonResponse):
    """An answer without a ``results`` list at the end, rendered whole; releases like the streamed one."""

    def __init__(self, content: Any, release: Release) -> None:
        self._release = release
        super().__init__(content)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def releasing_answer(release: Release, encode: Callable[[R], Any], result: R) -> Response:
    """The JSON answer ``encode(result)``, sent within the reservation that ``release`` ends."""
    try:
        content = encode(result)
        if isinstance(content, dict) and isinstance(content.get("results"), list):
            if list(content)[-1] == "results":
                return _StreamedAnswer(content, release)
        return _ReleasingAnswer(content, release)
    except BaseException:
        release()
        raise
