"""The processes ``spreadbus up`` runs, in start order, and where each one's code lives."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from spreadbus.config import Settings


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    module: str  # exposes ``main(settings: Settings) -> int``
    summary: str

    @property
    def built(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:  # the parent package itself does not exist yet
            return False

    def entry(self) -> Callable[[Settings], int]:
        main: Callable[[Settings], int] = importlib.import_module(self.module).main
        return main


# Start order: the logger first so it hears everyone, the web last.
SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("logger", "spreadbus.logger.service", "CentralLogger: channel:logs to files"),
        ServiceSpec("gateway", "spreadbus.gateway.service", "MarketGateway: trades into Redis"),
        ServiceSpec("engine", "spreadbus.engine.service", "QuantEngine: pair analytics, alerts"),
        ServiceSpec("archivist", "spreadbus.archivist.service", "Archivist: Parquet history"),
        ServiceSpec("web", "spreadbus.web.service", "Dashboard and HTTP API"),
    )
}

# Stop order: producers first, so consumers drain what was produced; the logger last.
STOP_ORDER = ("gateway", "engine", "web", "archivist", "logger")
