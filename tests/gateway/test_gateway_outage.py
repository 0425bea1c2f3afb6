"""A real Redis outage under a running gateway: stop the server, start it again, lose nothing."""

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.gateway.service import Gateway
from spreadbus.proc import free_port

pytestmark = pytest.mark.slow


async def test_redis_restart_is_buffered_and_nothing_is_lost(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port())
    url = await asyncio.to_thread(server.start)
    settings = Settings(
        redis_url=url, data_dir=tmp_path, source="sim", pairs=("ETHUSDT/BTCUSDT",), speed=1.0
    )
    client = aioredis.Redis.from_url(url)
    gateway = Gateway(settings, client, EventLog("gateway"))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        for _ in range(200):  # the sim may open in a quiet spell: wait for trades to flow
            if gateway.ingest.counters["published"] > 20:
                break
            await asyncio.sleep(0.05)
        assert gateway.ingest.counters["published"] > 20
        await asyncio.to_thread(server.stop)  # clean stop: AOF fsynced, nothing lost server-side
        for _ in range(200):  # the sim keeps trading; the gateway must buffer
            if gateway.ingest.write_errors["connection"] and gateway.ingest.buffered:
                break
            await asyncio.sleep(0.05)
        assert gateway.ingest.write_errors["connection"] > 0
        assert gateway.ingest.buffered > 0
        await asyncio.to_thread(server.start)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.wait_for(task, 20)
        counters = gateway.ingest.counters
        assert counters["lost"] == 0
        for symbol in ("ETHUSDT", "BTCUSDT"):
            assert await client.xlen(keys.tick_stream(symbol)) == gateway.ingest.per_symbol[symbol]
        assert counters["published"] == sum(gateway.ingest.per_symbol.values())
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await client.aclose()
        await asyncio.to_thread(server.stop)
