"""Connections to a single Redis node or a Redis Cluster, from one Settings object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from spreadbus.bus.embedded import url_file
from spreadbus.config import Settings

# Both clients speak the same commands; code that must differ (multi-key reads) asks
# ``is_cluster``. Typed as Any-compatible alias because redis-py's stubs differ per class.
AsyncRedis = aioredis.Redis | AsyncRedisCluster


class RedisUnavailableError(RuntimeError):
    """No Redis to talk to; the message says how to get one."""


def resolve_url(settings: Settings) -> str:
    """The configured URL, or the one a running embedded Redis left in the data dir."""
    if settings.redis_url:
        return settings.redis_url
    path = url_file(settings.data_dir)
    try:
        return path.read_text().strip()
    except OSError:
        raise RedisUnavailableError(
            f"no Redis: start one with `spreadbus redis --data-dir {settings.data_dir}` "
            "(or `spreadbus up`), or give --redis-url"
        ) from None


def _plain(url: str) -> str:
    return url.replace("redis+cluster://", "redis://").replace("rediss+cluster://", "rediss://")


def _options() -> dict[str, Any]:
    # No socket_timeout: blocking XREAD must be allowed to wait longer than any fixed timeout;
    # keepalive and health checks find dead connections instead. A short retry absorbs the one
    # error every pooled connection would otherwise raise after a Redis restart.
    return {
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "retry_on_error": [redis.exceptions.ConnectionError],
    }


def connect(settings: Settings, url: str | None = None) -> AsyncRedis:
    """An asyncio client (bytes responses) for the configured Redis or Redis Cluster."""
    url = url or resolve_url(settings)
    if settings.cluster or "+cluster://" in url:
        return AsyncRedisCluster.from_url(_plain(url), socket_connect_timeout=5)
    return aioredis.Redis.from_url(url, **_options())


def connect_sync(settings: Settings, url: str | None = None) -> redis.Redis | redis.RedisCluster:
    """A blocking client, for command-line checks and tools."""
    url = url or resolve_url(settings)
    if settings.cluster or "+cluster://" in url:
        return redis.RedisCluster.from_url(_plain(url), socket_connect_timeout=5)
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


def is_cluster(client: object) -> bool:
    return isinstance(client, AsyncRedisCluster | redis.RedisCluster)


def any_node(client: redis.Redis | redis.RedisCluster) -> dict[str, Any]:
    """``execute_command`` options for a command that names no key (``TS.QUERYINDEX``): a
    cluster client must be told where to send it; a single node needs nothing. (redis-py 8
    ignores a node flag such as ``PRIMARIES`` here and then fails to find a key, so it is
    given the nodes themselves.)"""
    if isinstance(client, redis.RedisCluster):
        return {"target_nodes": client.get_primaries()}  # type: ignore[no-untyped-call]
    return {}


async def on_every_primary(client: AsyncRedis, *args: Any) -> Any:
    """A command that names no key but must reach every primary (``FUNCTION LOAD``): on a
    cluster, sent to each primary (see :func:`any_node`); on a single node, sent once."""
    if isinstance(client, AsyncRedisCluster):
        await client.initialize()  # the node list is known only once connected
        nodes = client.get_primaries()
        return await client.execute_command(*args, target_nodes=nodes)
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class PackedArgs:
    """Arguments packed once (RESP, as they follow a command's header) for calls that send
    them again and again: a symbol's twelve keys go with every flush of the gateway."""

    count: int
    resp: bytes

    @classmethod
    def of(cls, args: Sequence[object]) -> PackedArgs:
        return cls(len(args), _resp_of(args))

    @classmethod
    def join(cls, parts: Sequence[PackedArgs]) -> PackedArgs:
        return cls(sum(part.count for part in parts), b"".join(part.resp for part in parts))


def _resp_of(args: Sequence[object]) -> bytes:
    """RESP of ``args`` without the ``*<count>`` line of a whole command."""
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
    return packed[packed.index(b"\r\n") + 2 :]


async def fcall(
    client: aioredis.Redis,
    function: str,
    keys: Sequence[str] | PackedArgs,
    args: Sequence[object],
) -> Any:
    """``FCALL function`` on a single node, packed by hiredis; an error reply is raised as
    :class:`redis.exceptions.ResponseError`.

    For the large calls of the gateway and the engine (hundreds of keys and thousands of
    values): redis-py's asyncio client packs a command in Python, re-joining a growing buffer
    for each argument, which took 0.8 ms for a 550-argument call against 0.09 ms here. Keys
    the caller packed before (:class:`PackedArgs`) are not packed again: in a gateway flush
    they were two thirds of the arguments and half of hiredis's time (0.1-0.3 us an argument).
    """
    if isinstance(keys, PackedArgs):
        count = 3 + keys.count + len(args)
        packed = b"".join(
            (b"*%d\r\n" % count, _resp_of(("FCALL", function, keys.count)), keys.resp,
             _resp_of(args))
        )  # fmt: skip
    else:
        command: Any = ("FCALL", function, len(keys), *keys, *args)  # the stub says 1-tuple
        packed = hiredis.pack_command(command)
    (reply,) = await _send(client, packed, 1, raise_on_error=True)
    return reply


async def pipelined(client: AsyncRedis, commands: Sequence[Sequence[object]]) -> list[Any]:
    """Commands in one round trip, without a transaction; their replies in order, an error
    reply in its place as an exception.

    On a single node every command is packed by hiredis (see :func:`fcall`) and its reply is
    hiredis's, with none of redis-py's response callbacks (an XINFO reply stays a flat list):
    the gateway's once-a-second feed state, 50 HSETs of a dozen fields, took 5-9 ms of the
    event loop packed by redis-py's pipeline, and held the tick flushes back that long. On a
    cluster the commands go through redis-py's cluster pipeline, which routes each to its node
    and does apply the callbacks: a caller whose reply they reshape reads both forms."""
    if isinstance(client, AsyncRedisCluster):
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)  # type: ignore[arg-type]
            return list(await pipe.execute(raise_on_error=False))
    packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)  # type: ignore[arg-type]
    return await _send(client, packed, len(commands), raise_on_error=False)


async def _send(
    client: aioredis.Redis, packed: bytes, commands: int, *, raise_on_error: bool
) -> list[Any]:
    """``commands`` packed commands in one round trip; their replies, in order."""
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    replies: list[Any] = []
    try:
        await connection.send_packed_command(packed, check_health=False)
        for _ in range(commands):  # every reply is read, errors too: the connection stays usable
            try:
                replies.append(await connection.read_response())
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
    except BaseException:
        await connection.disconnect()  # a reply may still be on its way: never reuse it
        raise
    finally:
        await pool.release(connection)
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
    return replies


def describe(url: str) -> str:
    """A URL safe to print: the password replaced by ``***``."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
