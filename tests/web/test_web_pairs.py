"""``/api/pairs``: read, replace (validated), and the change announced on channel:config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.config import DEFAULT_PAIRS


@pytest.fixture
async def config_messages(aredis: aioredis.Redis) -> AsyncIterator[asyncio.Queue[bytes]]:
    """Every message on channel:config from now on (subscribed before the test acts)."""
    pubsub = aredis.pubsub()
    await pubsub.subscribe(keys.CHANNEL_CONFIG)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def pump() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                queue.put_nowait(message["data"])

    task = asyncio.create_task(pump())
    yield queue
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pubsub.aclose()


async def test_get_pairs_falls_back_to_the_settings_and_never_writes(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    body = (await api.get("/api/pairs")).json()
    assert body == {"pairs": sorted(DEFAULT_PAIRS), "from_defaults": True}
    assert not sync_redis.exists(keys.CONFIG_PAIRS)

    sync_redis.sadd(keys.CONFIG_PAIRS, "SOLUSDT/ETHUSDT", "not a pair")
    body = (await api.get("/api/pairs")).json()
    assert body == {"pairs": ["SOLUSDT/ETHUSDT"], "from_defaults": False}


async def test_put_pairs_replaces_the_set_and_announces_it(
    api: httpx.AsyncClient, sync_redis: redis.Redis, config_messages: asyncio.Queue[bytes]
) -> None:
    sync_redis.sadd(keys.CONFIG_PAIRS, "ETHUSDT/BTCUSDT")
    response = await api.put("/api/pairs", json=["adausdt/btcusdt", "XRPUSDT/ETHUSDT"])

    assert response.status_code == 200
    assert response.json() == {
        "pairs": ["ADAUSDT/BTCUSDT", "XRPUSDT/ETHUSDT"],
        "from_defaults": False,
    }
    assert sync_redis.smembers(keys.CONFIG_PAIRS) == {b"ADAUSDT/BTCUSDT", b"XRPUSDT/ETHUSDT"}
    assert await asyncio.wait_for(config_messages.get(), 5) == b"pairs"
    assert (await api.get("/api/pairs")).json()["pairs"] == ["ADAUSDT/BTCUSDT", "XRPUSDT/ETHUSDT"]


@pytest.mark.parametrize(
    "body",
    [
        ["ETHUSDT/BTCUSDT", "ETHUSDT"],  # one bad pair spoils the request
        ["ETHUSDT/ETHUSDT"],
        ["ETH-USDT/BTCUSDT"],
        [],
        "ETHUSDT/BTCUSDT",  # not a list
        [1, 2],
        {"pairs": ["ETHUSDT/BTCUSDT"]},
    ],
)
async def test_put_bad_pairs_is_422_and_changes_nothing(
    api: httpx.AsyncClient,
    sync_redis: redis.Redis,
    config_messages: asyncio.Queue[bytes],
    body: object,
) -> None:
    sync_redis.sadd(keys.CONFIG_PAIRS, "ETHUSDT/BTCUSDT")
    response = await api.put("/api/pairs", json=body)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert sync_redis.smembers(keys.CONFIG_PAIRS) == {b"ETHUSDT/BTCUSDT"}
    await asyncio.sleep(0.05)
    assert config_messages.empty()


async def test_put_pairs_names_the_bad_one(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/pairs", json=["ETHUSDT/BTCUSDT", "DOGE"])
    assert response.status_code == 422
    assert response.json()["detail"] == [
        "malformed pair 'DOGE', expected Y/X such as ETHUSDT/BTCUSDT"
    ]
