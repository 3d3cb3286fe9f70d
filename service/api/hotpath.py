"""Hot routes: a few routes answered as plain ASGI, past FastAPI's router, dependencies and exception layers.

Under load, FastAPI's per-request machinery (route matching over every route, dependency solving, the
exception and exit-stack middlewares) cost more CPU than the model (py-spy on bench/). A hot route is
answered from the table :class:`HotRoutes` by the front layer (:class:`service.api.middleware.Front`), which
also keeps the request ids, deadlines, timing headers, metrics, the access log line and the body limit of
every other route, so these are the same for both doors. It does what the FastAPI route does, with the
same parts: the API key check (:func:`service.api.security.require_api_key`), the body parser
(:func:`service.api.bodies.parse_body`), the route's own handler, and the error answers
(:func:`service.api.errors.error_response`). The FastAPI route still exists: it documents the route in
the OpenAPI schema, and answers when the app is built with
``create_app(settings, hot_routes=False)`` (the tests compare both doors that way).

Measured gain, ``POST /classify`` on ``review-sentiment-zh`` (one text per request), one uvicorn process on
one core, the load generator (``python -m bench.loadgen``, 6 s per step) on the other; the same app built
with and without hot routes, three alternating rounds. The machine (2 cores) was shared with other jobs
(load average 6-8), so single figures swing by 2x; compare within a round:

    texts/s      C=64 hot   C=64 FastAPI   C=1 hot   C=1 FastAPI
    round 1        2015        528          1065        723
    round 2         461        426           546        576
    round 3         948        420           731        677

At C=64 the hot route answered 1.1-3.8x as many texts (median of the rounds: 948 against 426); at C=1,
where the model and the network dominate, the doors are within noise. CPU time is steadier than rates on
a busy machine: the same app driven in process (raw ASGI calls, 64 at a time, 6,000 requests, no HTTP
server, one core) spent 0.43-0.51 ms of CPU per request through the hot route and 0.65-0.69 ms through
FastAPI's route, two runs each (the plain-ASGI path this table replaced: 0.51-0.52 ms).

A hot route is declared once, as a :class:`HotRoute` beside its handler, and listed in
:data:`service.api.app.HOT_ROUTES`:

    HOT_ROUTE = HotRoute("POST", "/classify", ClassifyRequest, classify, response_model=ClassifyResponse)

with ``async def classify(request: ClassifyRequest, services: Services, path_params: Mapping[str, str])``
returning the 200 answer as plain data (numpy arrays allowed), or a Starlette ``Response`` for any other
answer (another status, media type or headers); errors are raised as :class:`service.errors.ServiceError`.
A route whose body is not one JSON document (binary tensors) declares ``request_model=None``: its handler
gets a :class:`RawBody` (the bytes and the headers) and parses it itself. Path templates use Starlette's
syntax (``{name}``); path parameters reach the handler as the strings of the path, through either door, so
the handler's own checks are the only ones. The metrics label is the template.

:func:`documented_twin` makes the FastAPI route from the same declaration: it documents the route in the
OpenAPI schema (its response model, error answers, body, path parameters and the handler's docstring) and
answers when the app is built with ``create_app(settings, hot_routes=False)`` (the tests compare both
doors that way). ``guarded=False`` for a route that stays open when an API key is configured.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Path
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.convertors import Convertor
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Scope

from service.api.bodies import parse_body, request_body
from service.api.deps import Services
from service.api.errors import error_response
from service.api.responses import OPTIONS, OrjsonResponse
from service.api.security import require_api_key
from service.errors import ServiceError
from service.observability.context import current_trace, note_route

HotHandler = Callable[[Any, Services, Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RawBody:
    """What a hot route with ``request_model=None`` receives: the body as sent, and the request headers."""

    body: bytes
    headers: Headers


@dataclass(frozen=True)
class HotRoute:
    """One route answered past FastAPI: the request's method and path template, its body, its handler,
    and what its documentation says (the handler's docstring is its description)."""

    method: str
    path: str
    request_model: type[BaseModel] | None  # None: the handler gets a RawBody
    handler: HotHandler
    guarded: bool = True  # needs the API key when LSTM_SERVICE_API_KEY is set
    response_model: Any = None
    responses: Mapping[int | str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    openapi_extra: Mapping[str, Any] | None = None  # the body's documentation when request_model is None
    # Path parameters' documentation (``fastapi.Path(...)``), by name; they reach the handler as strings.
    path_parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Template:
    route: HotRoute
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]


class HotRoutes:
    """The table of hot routes: :meth:`match` finds a request's route, :meth:`answer` answers it."""

    def __init__(self, routes: Sequence[HotRoute]) -> None:
        self._exact: dict[tuple[str, str], HotRoute] = {}
        self._templates: list[_Template] = []
        for route in routes:
            regex, _, convertors = compile_path(route.path)
            if convertors:
                self._templates.append(_Template(route, regex, convertors))
            else:
                self._exact[(route.method, route.path)] = route

    def match(self, method: str, path: str) -> tuple[HotRoute, dict[str, Any]] | None:
        """The hot route for a request and its path parameters, or None."""
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}
        for template in self._templates:
            if template.route.method != method:
                continue
            found = template.regex.match(path)
            if found is not None:
                converted = {
                    name: template.convertors[name].convert(value)
                    for name, value in found.groupdict().items()
                }
                return template.route, converted
        return None

    async def answer(
        self, matched: tuple[HotRoute, dict[str, Any]], scope: Scope, body: bytes
    ) -> bytes | Response:
        """The answer of a matched hot route to ``body``: the JSON bytes of a 200 (the front layer sends
        them with its own headers), or a ``Response`` (an error, or the handler's own answer)."""
        route, path_params = matched
        note_route(route.path)
        services: Services = scope["app"].state.services
        trace = current_trace()
        try:
            if route.guarded and services.settings.api_key is not None:
                require_api_key(Request(scope))
            decoding = time.time_ns() if trace is not None else 0
            request: Any
            if route.request_model is None:
                request = RawBody(body, Headers(scope=scope))
            else:
                request = parse_body(route.request_model, body)
            if trace is not None:
                trace.child("decode", decoding, time.time_ns(), {"lstm_service.body_bytes": len(body)})
            content = await route.handler(request, services, path_params)
        except ServiceError as error:
            return error_response(error.error_type, error.message, error.headers)
        if isinstance(content, Response):
            return content
        if trace is None:
            return orjson.dumps(content, option=OPTIONS)
        # The answer's encoding: from the model's results (or the handler's return) to the bytes.
        encoding = trace.results_ns or time.time_ns()
        answer = orjson.dumps(content, option=OPTIONS)
        trace.child("encode", encoding, time.time_ns())
        return answer


def documented_twin(
    route: HotRoute, dependencies: Sequence[Any] = (), responses: Mapping[int | str, Any] | None = None
) -> APIRoute:
    """The FastAPI route of a hot route, made from its one declaration (see the module docstring);
    ``dependencies`` and ``responses`` are added as a router's would be (the API key guard and its 401)."""

    async def endpoint(request: Request, **path: str) -> Response:
        body = await request.body()
        services: Services = request.app.state.services
        parsed: Any
        if route.request_model is None:
            parsed = RawBody(body, request.headers)
        else:
            parsed = parse_body(route.request_model, body)
        content = await route.handler(parsed, services, request.path_params)
        return content if isinstance(content, Response) else OrjsonResponse(content)

    _, _, convertors = compile_path(route.path)
    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    parameters += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=str,
            default=route.path_parameters.get(name, Path(description=name.capitalize() + ".")),
        )
        for name in convertors
    ]
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=Response)  # type: ignore[attr-defined]
    endpoint.__doc__ = route.handler.__doc__
    extra = route.openapi_extra
    if extra is None and route.request_model is not None:
        extra = request_body(route.request_model)
    return APIRoute(
        route.path,
        endpoint,
        methods=[route.method],
        name=route.handler.__name__,
        response_model=route.response_model,
        responses={**route.responses, **(responses or {})},
        tags=list(route.tags),
        dependencies=list(dependencies),
        openapi_extra=dict(extra) if extra is not None else None,
    )
