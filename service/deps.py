"""What a route needs, as annotated types: a route's signature is the list of its dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.inference import Inference
from service.registry import Registry
from service.settings import Settings


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_inference(request: Request) -> Inference:
    return request.app.state.inference


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
