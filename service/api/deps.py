"""What a route needs, as annotated types: a route's signature is the list of its dependencies.

:class:`Services` is what the lifespan builds (settings, the engine, the coordinator of admin changes);
hot route handlers (:mod:`service.api.hotpath`) take it whole. The getters are ``async`` on purpose:
FastAPI runs a plain ``def`` dependency in a worker thread, and three thread hops per request were a fifth
of the event loop's time under load (py-spy, bench/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.engine.coordination import Coordinator
from service.engine.engine import Engine
from service.engine.registry import Registry
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """The application's long-lived parts, built by the lifespan (``app.state.services``)."""

    settings: Settings
    engine: Engine
    coordinator: Coordinator

    @property
    def registry(self) -> Registry:
        return self.engine.registry


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_engine(request: Request) -> Engine:
    services: Services = request.app.state.services
    return services.engine


async def get_registry(request: Request) -> Registry:
    services: Services = request.app.state.services
    return services.engine.registry


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
EngineDep = Annotated[Engine, Depends(get_engine)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
