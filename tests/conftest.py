"""Test harness: one real embedded Redis (with RedisTimeSeries) for the whole session.

Isolation: every test gets database 0 emptied first with FLUSHDB. That is safe because the
server is the suite's own, started on a free port in a temporary folder; the suite never
touches a user's Redis. Pub/Sub channels are server-wide, so tests that listen on a channel
subscribe before they act and filter by what they produced.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus.embedded import EmbeddedRedis, binary, server_env, setup_runtime
from spreadbus.config import Settings
from spreadbus.proc import free_port, port_is_free, terminate


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


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too, and valid: Redis refuses
    a cluster node above port 55535."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randint(20_000, 55_535)
        if port not in ports and port_is_free(port) and port_is_free(port + 10_000):
            ports.append(port)
    return ports


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-primary Redis Cluster (the bundled server, cluster mode, timeseries loaded)
    on loopback, for the code paths that must stay inside one slot."""
    setup_runtime(say=lambda _: None)
    root = tmp_path_factory.mktemp("cluster")
    ports = _cluster_ports(3)
    module = binary("redis-server").parent.parent / "lib" / "redistimeseries.so"
    nodes = []
    for port in ports:
        folder = root / str(port)
        folder.mkdir()
        argv = [
            str(binary("redis-server")), "--port", str(port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--save", "", "--appendonly", "no", "--loadmodule", str(module),
        ]  # fmt: skip
        with (folder / "node.log").open("w") as log:
            nodes.append(subprocess.Popen(argv, cwd=folder, env=server_env(), stdout=log))
    try:
        for port, node in zip(ports, nodes, strict=True):
            client = redis.Redis(port=port, socket_connect_timeout=1)
            for _ in range(200):
                if node.poll() is not None:  # died: say why at once instead of waiting
                    lines = (root / str(port) / "node.log").read_text().splitlines()
                    raise RuntimeError(f"cluster node {port} exited: {lines[-1:]}")
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            client.close()
        subprocess.run(
            [str(binary("redis-cli")), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0", "--cluster-yes"],
            env=server_env(), check=True, capture_output=True,
        )  # fmt: skip
        client = redis.Redis(port=ports[0])
        for _ in range(100):
            if client.cluster("info")["cluster_state"] == "ok":
                break
            time.sleep(0.1)
        client.close()
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for node in nodes:
            terminate(node, 5)
