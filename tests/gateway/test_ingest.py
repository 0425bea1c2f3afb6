"""Batching in the ingest: when a batch goes out, and that one flush carries every symbol."""

import asyncio
import itertools

import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.bus.service import EventLog
from spreadbus.bus.ticks import TickWriter
from spreadbus.gateway.ghost import GhostConfig, GhostVenue
from spreadbus.gateway.ingest import Ingest, IngestConfig

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def make_ingest(client: aioredis.Redis, config: IngestConfig) -> Ingest:
    ghost = GhostVenue(GhostConfig(delay_ms=0.0, jitter_ms=0.0), seed=1)
    return Ingest(TickWriter(client), ghost, EventLog("gateway"), config, symbols=set(SYMBOLS))


def tick(symbol: str, trade_id: int) -> Tick:
    now = epoch_ms()
    return Tick(symbol, trade_id, "100.5", "0.25", "buy", int(now), int(now), now, "binance")


async def wait_for_len(client: aioredis.Redis, key: str, length: int, timeout: float) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await client.xlen(key)) < length:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    return int(got)


async def test_a_lone_tick_is_written_without_waiting_for_the_batch_limit(
    aredis: aioredis.Redis,
) -> None:
    """With nothing else arriving, waiting for more only adds latency: the batch goes out
    although the configured maximum wait (here a minute) is far from over."""
    ingest = make_ingest(aredis, IngestConfig(max_delay_ms=60_000, min_delay_ms=0.5))
    await ingest.writer.prepare(SYMBOLS)
    stop = asyncio.Event()
    flusher = asyncio.create_task(ingest.run(stop))
    try:
        ingest.on_ticks([tick("BTCUSDT", 1)])
        assert await wait_for_len(aredis, keys.tick_stream("BTCUSDT"), 1, timeout=10) == 1
        assert ingest.counters["flushes"] >= 1
    finally:
        stop.set()
        await flusher


async def test_a_burst_goes_out_in_few_flushes_each_carrying_every_symbol(
    aredis: aioredis.Redis,
) -> None:
    ingest = make_ingest(aredis, IngestConfig(max_delay_ms=50, min_delay_ms=0.5))
    await ingest.writer.prepare(SYMBOLS)
    stop = asyncio.Event()
    flusher = asyncio.create_task(ingest.run(stop))
    commands_before = await fcall_count(aredis)
    try:
        # a source that delivers 3,000 ticks in slices of 100, yielding in between (as the
        # WebSocket reader does): the flusher must not go out after every slice
        for start in range(0, 3000, 100):
            ingest.on_ticks([tick(SYMBOLS[i % 3], i // 3 + 1) for i in range(start, start + 100)])
            await asyncio.sleep(0)
        for symbol in SYMBOLS:
            assert await wait_for_len(aredis, keys.tick_stream(symbol), 1000, timeout=10) == 1000
    finally:
        stop.set()
        await flusher
    flushes = ingest.counters["flushes"]
    assert flushes < 30, f"{flushes} flushes for 30 slices: the batch did not grow"
    # a single node takes each flush, all symbols together, in one call
    assert await fcall_count(aredis) - commands_before == flushes


async def fcall_count(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("calls", 0))


async def test_ghosts_go_out_on_their_own_beat_and_every_one_arrives(
    aredis: aioredis.Redis,
) -> None:
    """Real ticks go out within milliseconds; their ghost twins (due at once here) ride along
    at most every ``ghost_every_ms``: the ghost stream's entries come in clumps at least that
    far apart (less the spread of a write's latency), while the real ticks' flushes come far
    more often, and in the end every real tick has its ghost."""
    every_ms = 60.0
    config = IngestConfig(max_delay_ms=2, min_delay_ms=0.5, ghost_every_ms=every_ms)
    ingest = make_ingest(aredis, config)
    await ingest.writer.prepare(SYMBOLS)
    stop = asyncio.Event()
    flusher = asyncio.create_task(ingest.run(stop))
    try:
        for trade_id in range(1, 121):  # ~0.6 s of ticks, one every ~5 ms
            ingest.on_ticks([tick("BTCUSDT", trade_id)])
            await asyncio.sleep(0.005)
        ghost_key = keys.ghost_stream("BTCUSDT")
        assert await wait_for_len(aredis, ghost_key, 120, timeout=10) == 120
    finally:
        stop.set()
        await flusher
    ghost_ms = sorted({int(i.split(b"-")[0]) for i, _ in await aredis.xrange(ghost_key)})
    gaps = [b - a for a, b in itertools.pairwise(ghost_ms)]
    assert min(gaps) >= every_ms - 15, f"ghost writes {gaps} ms apart, beat {every_ms} ms"
    # the real ticks did not wait for the beat: many more flushes than ghost clumps
    assert ingest.counters["flushes"] > 3 * len(ghost_ms), (ingest.counters, ghost_ms)
    assert ingest.counters["ghost_published"] == 120
