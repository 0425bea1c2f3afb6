"""Test harness: one real embedded Redis (with RedisTimeSeries) for the whole session.

Isolation: every test gets database 0 emptied first with FLUSHDB. That is safe because the
server is the suite's own, started on a free port in a temporary folder; the suite never
touches a user's Redis. Pub/Sub channels are server-wide, so tests that listen on a channel
subscribe before they act and filter by what they produced.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.config import Settings
from spreadbus.proc import free_port
from spreadbus.testing.cluster import running_cluster


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-data"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own SPREADBUS_* variables must not change what a test sees."""
    for name in list(os.environ):
        if name.startswith("SPREADBUS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(redis_url: str, data_dir: Path) -> Settings:
    return Settings(redis_url=redis_url, data_dir=data_dir, heartbeat_interval=0.5)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-primary Redis Cluster (the bundled server, cluster mode, timeseries loaded)
    on loopback, for the code paths that must stay inside one slot."""
    # a random first port: runs in parallel on one machine do not race for the same ports
    # (and a cluster node refuses a port above 55535)
    first = random.randint(20_000, 50_000)
    with running_cluster(tmp_path_factory.mktemp("cluster"), first) as (url, _nodes):
        yield url
