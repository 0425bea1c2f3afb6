"""Two engine processes split the pairs through leases; kill one, the other takes its share
within 5 s and every stream entry is still counted exactly once per share."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.configstore import set_pairs
from spreadbus.bus.lease import share_of
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.config import Settings
from spreadbus.engine.consumer import load_cursor
from spreadbus.engine.core import StreamPosition, WriteSet
from spreadbus.engine.writer import FencedError, SnapshotWriter

pytestmark = pytest.mark.slow
# Two pairs per share of two (crc32 mod 2); ETHUSDT and XRPUSDT are legs in both shares.
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "XRPUSDT/ADAUSDT", "DOGEUSDT/XRPUSDT")
SYMBOLS = sorted({s for p in PAIRS for s in p.split("/")})
TAKEOVER_S = 5.0


async def until(condition: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Market:
    """Ticks of every symbol every 20 ms, through the gateway's own writer."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.writer = TickWriter(client)
        self.prices = dict.fromkeys(SYMBOLS, 100.0)
        self.trade_id = 0
        self.published: dict[str, int] = dict.fromkeys(SYMBOLS, 0)
        self.rng = random.Random(5)

    async def run(self, stop: asyncio.Event) -> None:
        await self.writer.prepare(SYMBOLS)
        while not stop.is_set():
            now = int(time.time() * 1000)
            batches = {}
            for symbol in SYMBOLS:
                self.trade_id += 1
                self.prices[symbol] *= 1 + self.rng.gauss(0, 1e-4)
                price = f"{self.prices[symbol]:.4f}"
                tick = Tick(symbol, self.trade_id, price, "1", "buy", now, now, now, "sim")
                batches[symbol] = SymbolBatch([tick], [])
            result = await self.writer.write(batches)
            assert result.added == len(SYMBOLS)
            for symbol in SYMBOLS:
                self.published[symbol] += 1
            await asyncio.sleep(0.02)


def start_engine(settings: Settings, instance: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": settings.redis_url or "",
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SHARD": "auto",
        "SPREADBUS_ENGINES": "2",
        "SPREADBUS_INSTANCE": instance,
        "SPREADBUS_WINDOW": "20",
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
    }
    with (data_dir / f"engine-{instance}.log").open("wb") as log:  # the child keeps its copy
        return subprocess.Popen(
            [sys.executable, "-m", "spreadbus", "engine"], env=env, stdout=log, stderr=log
        )


async def test_killing_one_of_two_engines_hands_its_pairs_over_exactly_once(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    assert {share_of(p, 2) for p in PAIRS} == {0, 1}  # both shares have pairs
    await set_pairs(aredis, PAIRS)
    engines = {name: start_engine(settings, name, data_dir) for name in ("a", "b")}
    try:
        await _kill_one_and_check(aredis, engines)
    finally:
        for process in engines.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                assert process.wait(20) == 0


async def _kill_one_and_check(
    aredis: aioredis.Redis, engines: dict[str, subprocess.Popen[bytes]]
) -> None:
    async def split() -> list[Any] | None:
        owners = [await aredis.get(keys.lease("engine", s)) for s in (0, 1)]
        return owners if None not in owners and owners[0] != owners[1] else None

    async def started() -> bool:  # each share stored where it starts: before the first entry
        return all([await aredis.exists(keys.engine_share_cursor(s, 2)) for s in (0, 1)])

    owners = await until(split, 90, "each engine to hold one share")  # slow starts under load
    await until(started, 30, "both shares' engines to store their start")
    market = Market(aredis)
    stop = asyncio.Event()
    publishing = asyncio.create_task(market.run(stop))
    try:

        async def all_served_after(ms: int) -> bool:
            for pair in PAIRS:
                updated = await aredis.hget(keys.analytics_state(pair), "updated_ms")
                if updated is None or int(updated) <= ms:
                    return False
            return True

        await until(lambda: all_served_after(0), 60, "every pair's first snapshot")
        # kill the owner of share 0 (its heartbeat names its pid)
        victim_owner = owners[0].decode()
        victim = next(n for n, p in engines.items() if f":{p.pid}:" in victim_owner)
        killed_ms = int(time.time() * 1000)
        os.kill(engines[victim].pid, signal.SIGKILL)
        engines[victim].wait(5)
        began = time.monotonic()
        victim_pairs = [p for p in PAIRS if share_of(p, 2) == 0]

        async def served_again() -> bool:
            for pair in victim_pairs:
                updated = await aredis.hget(keys.analytics_state(pair), "updated_ms")
                if updated is None or int(updated) <= killed_ms + 100:
                    return False
            return True

        await until(served_again, TAKEOVER_S + 5, "the killed engine's pairs served again")
        took_s = time.monotonic() - began
        print(f"takeover: the killed engine's pairs served again after {took_s:.2f} s")
        assert took_s <= TAKEOVER_S, f"takeover took {took_s:.2f} s"
        survivor = await aredis.get(keys.lease("engine", 0))
        assert survivor == owners[1]
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await publishing
    # once the survivor has read everything, each share's cursor counts every entry once
    for shard in (0, 1):
        streams = {keys.tick_stream(s) for p in PAIRS if share_of(p, 2) == shard
                   for s in p.split("/")}  # fmt: skip

        async def drained(streams: set[str] = streams, shard: int = shard) -> bool:
            cursor = await load_cursor(aredis, keys.engine_share_cursor(shard, 2))
            lengths = {s: await aredis.xlen(s) for s in streams}
            return all(s in cursor and cursor[s].processed == lengths[s] for s in streams)

        try:
            await until(drained, 15, f"share {shard} to process every entry once")
        finally:
            cursor = await load_cursor(aredis, keys.engine_share_cursor(shard, 2))
            print(shard, {s: (p, await aredis.xlen(s)) for s, p in cursor.items()})
        cursor = await load_cursor(aredis, keys.engine_share_cursor(shard, 2))
        for stream in streams:
            last: Any = await aredis.xrevrange(stream, count=1)
            assert cursor[stream].last_id == last[0][0].decode()
            assert cursor[stream].bad == 0


async def test_a_batch_is_stored_only_while_the_share_lease_is_ours(
    aredis: aioredis.Redis,
) -> None:
    """The fence: an engine frozen past its lease's TTL must not store the batch it was
    writing (the new owner processes those entries); on a single node the check is inside the
    same function call as the write."""
    lease, cursor = keys.lease("engine", 1), keys.engine_share_cursor(1, 2)
    writer = SnapshotWriter(aredis, cluster=False, cursor_key=cursor, fence=(lease, "me"))
    await writer.prepare()
    stream = keys.tick_stream("ETHUSDT")
    batch = WriteSet(
        pair_fields={"ETHUSDT/BTCUSDT": {"beta": 1.5}},
        positions={stream: StreamPosition("5-1", 3, 0)},
        counts={stream: (3, 0)},
    )
    await aredis.set(lease, "someone-else")
    with pytest.raises(FencedError):
        await writer.write(batch)
    assert await aredis.exists(cursor, keys.analytics_state("ETHUSDT/BTCUSDT")) == 0
    await aredis.set(lease, "me")
    await writer.write(batch)
    assert (await load_cursor(aredis, cursor))[stream] == StreamPosition("5-1", 3, 0)
    assert await aredis.hget(keys.analytics_state("ETHUSDT/BTCUSDT"), "beta") == b"1.5"
