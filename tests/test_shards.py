"""Two engine processes split the pairs through leases; kill one, the other takes its share
within 5 s and every stream entry is still counted exactly once per share."""

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.configstore import set_pairs
from spreadbus.bus.connect import AsyncRedis, connect
from spreadbus.bus.lease import share_of
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.config import Settings
from spreadbus.engine.consumer import load_cursor
from spreadbus.engine.core import StreamPosition, WriteSet
from spreadbus.engine.writer import FencedError, SnapshotWriter
from spreadbus.testing.shards import (
    start_share_process,
    stop_processes,
    takes_at_most,
    until,
)

pytestmark = pytest.mark.slow
# Two pairs per share of two (crc32 mod 2); ETHUSDT and XRPUSDT are legs in both shares.
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "XRPUSDT/ADAUSDT", "DOGEUSDT/XRPUSDT")
SYMBOLS = sorted({s for p in PAIRS for s in p.split("/")})
TAKEOVER_S = 5.0


class Market:
    """Ticks of every symbol every 20 ms, through the gateway's own writer."""

    def __init__(self, client: AsyncRedis) -> None:
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


def start_engine(url: str, instance: str, data_dir: Path) -> subprocess.Popen[bytes]:
    return start_share_process(
        "engine", url, instance, data_dir, extra_env={"SPREADBUS_WINDOW": "20"}
    )


async def two_started_shares(
    client: AsyncRedis, engines: dict[str, subprocess.Popen[bytes]]
) -> tuple[list[Any], str]:
    """Wait until each engine holds one share and both stored their start; the lease
    owners, and the name of share 0's owner (its lease names its pid)."""

    async def split() -> list[Any] | None:
        owners = [await client.get(keys.lease("engine", s)) for s in (0, 1)]
        return owners if None not in owners and owners[0] != owners[1] else None

    async def started() -> bool:  # each share stored where it starts: before the first entry
        return all([await client.exists(keys.engine_share_cursor(s, 2)) for s in (0, 1)])

    owners = await until(split, 90, "each engine to hold one share")  # slow starts under load
    await until(started, 30, "both shares' engines to store their start")
    first = owners[0].decode()
    return owners, next(n for n, p in engines.items() if f":{p.pid}:" in first)


async def served_after(client: AsyncRedis, pairs: list[str] | tuple[str, ...], ms: int) -> bool:
    for pair in pairs:
        updated = await client.hget(keys.analytics_state(pair), "updated_ms")
        if updated is None or int(updated) <= ms:
            return False
    return True


def share_streams(shard: int) -> set[str]:
    return {keys.tick_stream(s) for p in PAIRS if share_of(p, 2) == shard for s in p.split("/")}


async def drained(client: AsyncRedis, shard: int) -> dict[str, StreamPosition] | None:
    """Share ``shard``'s cursor once it counts every entry of its streams once, else None."""
    cursor = await load_cursor(client, keys.engine_share_cursor(shard, 2))
    for stream in share_streams(shard):
        if stream not in cursor or cursor[stream].processed != await client.xlen(stream):
            return None
    return cursor


async def check_exactly_once(client: AsyncRedis) -> None:
    """Each share's cursor counts every entry once and stands at its streams' last entries."""
    for shard in (0, 1):
        try:
            await until(partial(drained, client, shard), 15, f"share {shard} to drain")
        finally:
            cursor = await load_cursor(client, keys.engine_share_cursor(shard, 2))
            print(shard, {s: (p, await client.xlen(s)) for s, p in cursor.items()})
        cursor = await load_cursor(client, keys.engine_share_cursor(shard, 2))
        for stream in share_streams(shard):
            last: Any = await client.xrevrange(stream, count=1)
            assert cursor[stream].last_id == last[0][0].decode()
            assert cursor[stream].bad == 0


async def hand_share_0_over(
    client: AsyncRedis, engines: dict[str, subprocess.Popen[bytes]], sig: signal.Signals
) -> str:
    """With ticks flowing, send ``sig`` to share 0's owner; the other engine must serve its
    pairs within :data:`TAKEOVER_S`. The ticks stop 1 s after that. The victim's name."""
    owners, victim = await two_started_shares(client, engines)
    market = Market(client)
    stop = asyncio.Event()
    publishing = asyncio.create_task(market.run(stop))
    try:
        await until(lambda: served_after(client, PAIRS, 0), 60, "every pair's snapshot")
        signalled_ms = int(time.time() * 1000)
        os.kill(engines[victim].pid, sig)
        victim_pairs = [p for p in PAIRS if share_of(p, 2) == 0]
        await takes_at_most(
            lambda: served_after(client, victim_pairs, signalled_ms + 100), TAKEOVER_S,
            f"share 0's pairs served by the other engine after {sig.name}",
        )  # fmt: skip
        assert await client.get(keys.lease("engine", 0)) == owners[1]
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await publishing
    return victim


async def test_killing_one_of_two_engines_hands_its_pairs_over_exactly_once(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    assert {share_of(p, 2) for p in PAIRS} == {0, 1}  # both shares have pairs
    await set_pairs(aredis, PAIRS)
    engines = {n: start_engine(settings.redis_url or "", n, data_dir) for n in ("a", "b")}
    try:
        await hand_share_0_over(aredis, engines, signal.SIGKILL)
        await check_exactly_once(aredis)  # once the survivor has read everything
    finally:
        stop_processes(engines)


async def test_a_frozen_engine_stores_no_late_batch_on_a_cluster(
    redis_cluster_url: str, data_dir: Path
) -> None:
    """SIGSTOP the owner of share 0 past its lease's TTL while ticks flow: the other engine
    takes the share over and drains it; then SIGCONT. The frozen engine still holds the batch
    it had read (and the share in its memory) and tries to store it: the fence refuses it, so
    share 0's cursor stays exactly where the new owner left it (no new ticks come any more,
    so a late cursor would stay visible), and both shares count every entry once."""
    client = connect(Settings(redis_url=redis_cluster_url))
    await client.delete(
        *(k for s in SYMBOLS for k in (keys.tick_stream(s), keys.ghost_stream(s))),
        *(keys.engine_share_cursor(s, 2) for s in (0, 1)),
    )  # the cluster fixture lives for the session: start from empty streams and cursors
    for key in (*(keys.lease("engine", s) for s in (0, 1)), keys.lease_members("engine"),
                *(keys.analytics_state(p) for p in PAIRS)):  # fmt: skip
        await client.delete(key)  # one slot per command
    await set_pairs(client, PAIRS)
    engines = {n: start_engine(redis_cluster_url, n, data_dir) for n in ("a", "b")}
    try:
        victim = await hand_share_0_over(client, engines, signal.SIGSTOP)
        taken_over = await until(lambda: drained(client, 0), 30, "share 0 to drain")
        os.kill(engines[victim].pid, signal.SIGCONT)

        async def fenced() -> int:  # its late batch refused (its share engine ends there)
            beat = await client.hget(keys.health(f"engine-{victim}"), "batches_fenced")
            return int(beat or 0)

        await until(fenced, 30, "the resumed engine's late batch to be refused")
        assert await load_cursor(client, keys.engine_share_cursor(0, 2)) == taken_over
        await check_exactly_once(client)
    finally:
        stop_processes(engines)
        await client.aclose()


@pytest.fixture(params=["single", "cluster"])
async def any_redis(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[tuple[AsyncRedis, bool]]:
    """A client of the single node or of the 3-primary cluster fixture, and which it is."""
    cluster = request.param == "cluster"
    url = request.getfixturevalue("redis_cluster_url") if cluster else redis_url
    client = connect(Settings(redis_url=url))
    try:
        yield client, cluster
    finally:
        await client.aclose()


async def test_a_batch_is_stored_only_while_the_share_lease_is_ours(
    any_redis: tuple[AsyncRedis, bool],
) -> None:
    """The fence: an engine frozen past its lease's TTL must not store the batch it was
    writing (the new owner processes those entries). On a single node the check is inside the
    same function call as the whole write; on a cluster inside the cursor's call (the cursor
    lives in the lease's slot), after a check of the lease before the results."""
    client, cluster = any_redis
    lease, cursor = keys.lease("engine", 1), keys.engine_share_cursor(1, 2)
    pair_key = keys.analytics_state("ETHUSDT/BTCUSDT")
    await client.delete(lease, cursor, pair_key)
    writer = SnapshotWriter(client, cluster=cluster, cursor_key=cursor, fence=(lease, "me"))
    await writer.prepare()
    stream = keys.tick_stream("ETHUSDT")
    batch = WriteSet(
        pair_fields={"ETHUSDT/BTCUSDT": {"beta": 1.5}},
        positions={stream: StreamPosition("5-1", 3, 0)},
        counts={stream: (3, 0)},
    )
    await client.set(lease, "someone-else")
    with pytest.raises(FencedError):
        await writer.write(batch)
    assert await client.exists(cursor) == 0
    assert await client.exists(pair_key) == 0
    assert writer.fenced == 1
    await client.set(lease, "me")
    await writer.write(batch)
    assert (await load_cursor(client, cursor))[stream] == StreamPosition("5-1", 3, 0)
    assert await client.hget(pair_key, "beta") == b"1.5"
    if cluster:
        # the results passed the check before them; the lease is taken before the cursor's
        # call: the cursor and its counts stay where they were (the Lua check in its slot)
        later = WriteSet(positions={stream: StreamPosition("9-0", 7, 0)}, counts={stream: (7, 0)})
        await client.set(lease, "someone-else")
        with pytest.raises(FencedError):
            await writer._cluster_cursor(later)
        assert (await load_cursor(client, cursor))[stream] == StreamPosition("5-1", 3, 0)
    await client.delete(lease, cursor, pair_key)


async def test_a_share_cursor_under_its_former_name_is_moved_once(
    aredis: aioredis.Redis,
) -> None:
    """Before the cursor moved into its lease's slot it had another name: an upgraded engine
    resumes from it (moved, old key deleted) and never overwrites a newer cursor with it."""
    old, new = keys.legacy_engine_share_cursor(0, 2), keys.engine_share_cursor(0, 2)
    stream = keys.tick_stream("BTCUSDT")
    await aredis.hset(old, stream, "7-0")
    writer = SnapshotWriter(aredis, cluster=False, cursor_key=new)
    assert await writer.adopt(old) is True
    assert (await load_cursor(aredis, new))[stream].last_id == "7-0"
    assert await aredis.exists(old) == 0
    await aredis.hset(old, stream, "3-0")  # a stale copy left by a crash: the new one wins
    assert await writer.adopt(old) is False
    assert (await load_cursor(aredis, new))[stream].last_id == "7-0"
    assert await aredis.exists(old) == 0
