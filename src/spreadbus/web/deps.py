"""What route handlers get injected: the settings and the Redis client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from spreadbus.bus.connect import AsyncRedis, connect
from spreadbus.config import Settings


class RedisHandle:
    """The app's Redis client: the one given (the service's), or one made on first use.

    Made lazily so that the app starts, and answers 503, while there is no Redis yet.
    """

    def __init__(self, settings: Settings, client: AsyncRedis | None = None) -> None:
        self._settings = settings
        self._client = client
        self._owned = client is None

    def get(self) -> AsyncRedis:
        if self._client is None:
            self._client = connect(self._settings)  # RedisUnavailableError -> 503
        return self._client

    async def close(self) -> None:
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class _LazyClient:
    """The client, looked up on first use: a handler validates its input before it touches
    Redis, so bad input is a 422 even while there is no Redis at all (a 503)."""

    __slots__ = ("_handle",)

    def __init__(self, handle: RedisHandle) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle.get(), name)


def _client(request: Request) -> Any:
    return _LazyClient(request.app.state.redis)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# Any: redis-py types every command as ``Awaitable[T] | T``; handlers await them.
Client = Annotated[Any, Depends(_client)]
AppSettings = Annotated[Settings, Depends(_settings)]
