"""A running gateway against a Redis that answers with errors: functions flushed, a series
deleted, out of memory, everything flushed. Each failed write is counted by kind and shown in
health, the flush task lives on, the batch goes in once Redis takes writes again, and the
candles equal pandas candles of the ticks in the stream."""

import asyncio
import time
from collections.abc import Callable

import pandas as pd
import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.config import Settings
from spreadbus.gateway.service import Gateway
from spreadbus.testing.candles import candles_from_ticks
from spreadbus.testing.services import running_service

pytestmark = pytest.mark.slow
SYMBOLS = ("ETHUSDT", "BTCUSDT")


async def poll(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def stream_grows(client: aioredis.Redis, by: int, timeout: float = 10.0) -> None:
    before = {s: await client.xlen(keys.tick_stream(s)) for s in SYMBOLS}
    deadline = time.monotonic() + timeout
    while True:
        now = {s: await client.xlen(keys.tick_stream(s)) for s in SYMBOLS}
        if all(now[s] - before[s] >= by for s in SYMBOLS):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"streams did not grow by {by} in {timeout} s: {before} -> {now}")
        await asyncio.sleep(0.05)


async def snapshot(client: aioredis.Redis, symbol: str) -> tuple[list[Tick], pd.DataFrame]:
    """A symbol's stream and candles at one instant (MULTI: the gateway keeps writing)."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.xrange(keys.tick_stream(symbol))
        for field in keys.CANDLE_FIELDS:
            pipe.execute_command("TS.RANGE", keys.candle_series(symbol, field), "-", "+", "LATEST")
        entries, *series = await pipe.execute()
    fields = zip(keys.CANDLE_FIELDS, series, strict=True)
    candles = pd.DataFrame({f: {int(ts): float(v) for ts, v in rows} for f, rows in fields})
    return tickschema.decode_all(entries, symbol), candles


async def test_error_replies_are_retried_counted_and_never_end_the_flusher(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    settings = settings.model_copy(
        update={"source": "sim", "pairs": ("ETHUSDT/BTCUSDT",), "speed": 2.0}
    )
    async with running_service(Gateway, settings) as gateway:
        ingest = gateway.ingest
        await stream_grows(aredis, 20)

        await aredis.execute_command("FUNCTION", "FLUSH")  # the trigger
        await stream_grows(aredis, 20)
        assert ingest.counters["write_function_reloads"] == 1

        await aredis.delete(keys.candle_source_series("ETHUSDT", "volume"))
        await stream_grows(aredis, 20)
        assert ingest.counters["write_repairs"] == 1

        saved = await aredis.config_get("maxmemory*")
        try:
            await aredis.config_set("maxmemory-policy", "noeviction")
            await aredis.config_set("maxmemory", "1")
            await poll(lambda: ingest.write_errors["out_of_memory"] >= 3, 10, "OOM failures")
            health = gateway.health()
            assert health["write_errors_by_kind"]["out_of_memory"] >= 3  # type: ignore[index]
            assert "maxmemory" in str(health["write_last_error"])
            assert "write_failing_s" in health
            await poll(lambda: ingest.buffered > 50, 10, "ticks held during the OOM")
        finally:
            for name in ("maxmemory", "maxmemory-policy"):
                await aredis.config_set(name, saved[name])
        await poll(lambda: "write_failing_s" not in gateway.health(), 10, "writes to resume")
        await stream_grows(aredis, 20)
        flusher = [t for t in asyncio.all_tasks() if t.get_name() == "flusher"]
        assert flusher and not flusher[0].done()

        # nothing lost and nothing doubled so far: every accepted tick is in its stream once,
        # and the candles are those of the stream's ticks (pandas, exact prices; volume 1e-9)
        stop_at = ingest.counters["ticks"]
        await poll(lambda: ingest.buffered == 0, 10, "the buffer to drain")
        for symbol in SYMBOLS:
            ticks, got = await snapshot(aredis, symbol)
            assert len({t.trade_id for t in ticks}) == len(ticks)
            want = candles_from_ticks(ticks)
            got = got.loc[want.index[0] : want.index[-1]]  # the minutes the stream holds
            assert list(got.index) == list(want.index), symbol
            for field in ("open", "high", "low", "close"):
                assert got[field].tolist() == want[field].tolist(), (symbol, field)
            assert got["volume"].tolist() == pytest.approx(want["volume"].tolist(), rel=1e-9)
        assert ingest.counters["ticks"] >= stop_at

        await aredis.flushall()  # a fresh server: keys gone (and the gateway must notice)
        await aredis.execute_command("FUNCTION", "FLUSH")
        await stream_grows(aredis, 20)
        assert ingest.counters["write_repairs"] >= 3  # both symbols recreated
    counters = gateway.ingest.counters
    assert counters["lost"] == 0
    assert counters["published"] + counters["duplicates"] == counters["ticks"]
