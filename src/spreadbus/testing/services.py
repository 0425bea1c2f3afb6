"""Running a real service object inside the caller's event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from spreadbus.bus.connect import AsyncRedis, connect
from spreadbus.bus.service import EventLog, Service
from spreadbus.config import Settings

ServiceT = TypeVar("ServiceT", bound=Service)


@contextlib.asynccontextmanager
async def running_service(
    factory: Callable[[Settings, AsyncRedis, EventLog], ServiceT],
    settings: Settings,
    *,
    client: AsyncRedis | None = None,
    stop_timeout: float = 20.0,
) -> AsyncIterator[ServiceT]:
    """The service's ``run`` in this event loop until the block ends, then a clean stop and
    ``close``. Without ``client`` it gets a connection of its own, closed afterwards."""
    own_client = client is None
    redis = connect(settings) if client is None else client
    service = factory(settings, redis, EventLog(service_name(factory)))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, stop_timeout)
        finally:
            await service.close()
            if own_client:
                await redis.aclose()


def service_name(factory: object) -> str:
    name = getattr(factory, "name", None)
    return name if isinstance(name, str) else "service"
