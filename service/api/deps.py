"""What a route needs, as annotated types: a route's signature is the list of its dependencies.

The getters are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and three
thread hops per request were a fifth of the event loop's time under load (py-spy, bench/).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.engine.inference import Inference
from service.engine.registry import Registry
from service.settings import Settings


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_inference(request: Request) -> Inference:
    return request.app.state.inference


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
