"""A real gateway restart on the sim source: the second run continues the trade ids and the
clock after the stream's last trade, as a real venue would; no id is issued twice."""

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.config import Settings
from spreadbus.gateway.service import Gateway
from spreadbus.testing.services import running_service

pytestmark = pytest.mark.slow
SYMBOLS = ("ETHUSDT", "BTCUSDT")


async def stream_ticks(client: aioredis.Redis, symbol: str) -> list[Tick]:
    return tickschema.decode_all(await client.xrange(keys.tick_stream(symbol)), symbol)


async def run_until_published(settings: Settings, count: int, timeout: float = 20.0) -> Gateway:
    async with running_service(Gateway, settings) as gateway:
        deadline = time.monotonic() + timeout
        while min(gateway.ingest.per_symbol[s] for s in SYMBOLS) < count:
            assert time.monotonic() < deadline, f"fewer than {count} ticks a symbol in {timeout} s"
            await asyncio.sleep(0.05)
    return gateway


async def test_a_restarted_sim_gateway_continues_after_the_streams_last_trade(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    # speed 20: the sim clock runs ahead of the wall clock, so a restart "now" would even go
    # back in time; the second run must start after the last trade all the same
    settings = settings.model_copy(
        update={"source": "sim", "pairs": ("ETHUSDT/BTCUSDT",), "speed": 20.0}
    )
    await run_until_published(settings, 200)
    before = {s: await stream_ticks(aredis, s) for s in SYMBOLS}
    second = await run_until_published(settings, 200)
    assert second.ingest.counters["duplicates"] == 0
    for symbol in SYMBOLS:
        ticks = await stream_ticks(aredis, symbol)
        old, new = before[symbol], ticks[len(before[symbol]) :]
        assert ticks[: len(old)] == old
        assert len(new) == second.ingest.per_symbol[symbol] >= 200
        ids = [t.trade_id for t in ticks]
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{symbol}: ids not consecutive"
        assert new[0].trade_id == old[-1].trade_id + 1
        assert new[0].trade_ts > old[-1].trade_ts
