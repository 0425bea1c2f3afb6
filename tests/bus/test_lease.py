"""Leases on real Redis (single node and cluster): acquire, renew, lose, take over, split."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.connect import connect
from spreadbus.bus.lease import ShareGroup, share_of
from spreadbus.config import Settings

TTL_S = 0.6
STEP_S = 0.1


def group(client: aioredis.Redis, owner: str, shards: int = 4) -> ShareGroup:
    return ShareGroup(client, "engine", shards, owner=owner, ttl_s=TTL_S, interval_s=STEP_S)


async def steps(groups: list[ShareGroup], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for g in groups:
            change = await g.step()
            await g.release(change.surplus)
        await asyncio.sleep(STEP_S)


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Seconds until ``condition`` held; fails after ``timeout_s``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if await condition():
            return time.monotonic() - began
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def owners(client: aioredis.Redis, shards: int = 4) -> list[bytes | str | None]:
    return [await client.get(keys.lease("engine", s)) for s in range(shards)]


async def test_a_lone_process_takes_every_share_and_renews_them(aredis: aioredis.Redis) -> None:
    a = group(aredis, "a")
    first = await a.step()
    assert sorted(first.gained) == [0, 1, 2, 3] and a.held == {0, 1, 2, 3}
    await steps([a], 3 * TTL_S)  # five TTLs' worth of renewals: still held, nothing lost
    assert await owners(aredis) == [b"a"] * 4
    assert 0 < await aredis.pttl(keys.lease("engine", 0)) <= TTL_S * 1000
    again = await a.step()
    assert (again.gained, again.lost, again.surplus) == ([], [], [])


async def test_a_joiner_gets_a_fair_part_and_the_parts_never_overlap(
    aredis: aioredis.Redis,
) -> None:
    a, b = group(aredis, "a"), group(aredis, "b")
    await a.step()
    await steps([a, b], 1.0)
    assert len(a.held) == len(b.held) == 2
    assert a.held.isdisjoint(b.held) and a.held | b.held == {0, 1, 2, 3}
    held = await owners(aredis)
    assert all(held[s] == b"a" for s in a.held) and all(held[s] == b"b" for s in b.held)


async def test_a_process_that_stops_renewing_loses_its_shares_to_a_survivor(
    aredis: aioredis.Redis,
) -> None:
    a, b = group(aredis, "a"), group(aredis, "b")
    await a.step()
    await steps([a, b], 1.0)
    dead = set(a.held)

    async def survivor_has_all() -> bool:
        await steps([b], STEP_S)
        return b.held == {0, 1, 2, 3}

    # a stops renewing: b holds everything within a TTL and a step (+ scheduling slack)
    took = await until(survivor_has_all, TTL_S + STEP_S + 1.0, "the survivor to take over")
    assert took <= TTL_S + 2 * STEP_S + 0.5
    late = await a.step()  # a wakes up: it is told, and takes nothing back
    assert sorted(late.lost) == sorted(dead) and late.gained == [] and a.held == set()
    await a.release(dead)  # releasing what b holds now must not free it
    assert await owners(aredis) == [b"b"] * 4


async def test_a_clean_leave_hands_over_at_once(aredis: aioredis.Redis) -> None:
    a, b = group(aredis, "a"), group(aredis, "b")
    await a.step()
    await steps([a, b], 1.0)
    left = sorted(a.held)
    await a.leave()
    assert await aredis.zscore(keys.lease_members("engine"), "a") is None
    change = await b.step()  # no TTL to wait for
    assert sorted(change.gained) == left and b.held == {0, 1, 2, 3}


def test_share_of_is_stable_and_spreads() -> None:
    names = [f"S{i}USDT/X{i}USDT" for i in range(400)]
    counts = [0, 0]
    for name in names:
        assert share_of(name, 2) == share_of(name, 2)
        counts[share_of(name, 2)] += 1
    assert share_of("ETHUSDT/BTCUSDT", 2) == 1  # crc32: the same in every process and version
    assert 160 <= counts[0] <= 240  # binomial(400, 0.5): within 4 sigma


@pytest.mark.slow
async def test_leases_work_on_a_cluster(redis_cluster_url: str) -> None:
    client = connect(Settings(redis_url=redis_cluster_url))
    try:
        for shard in range(4):
            await client.delete(keys.lease("engine", shard))
        await client.delete(keys.lease_members("engine"))
        a, b = group(client, "a"), group(client, "b")  # type: ignore[arg-type]
        await a.step()
        await steps([a, b], 1.0)
        assert a.held.isdisjoint(b.held) and a.held | b.held == {0, 1, 2, 3}
        await a.leave()
        await b.step()
        assert b.held == {0, 1, 2, 3}
        await b.leave()
    finally:
        await client.aclose()


async def test_a_busy_event_loop_keeps_its_shares_through_the_keeper_thread(
    aredis: aioredis.Redis, redis_url: str
) -> None:
    a = group(aredis, "a")
    await a.step()
    stop = a.keep_alive(redis.Redis.from_url(redis_url))
    try:
        time.sleep(3 * TTL_S)  # the loop does nothing at all: only the thread renews
        assert await owners(aredis) == [b"a"] * 4
    finally:
        stop.set()
    await asyncio.sleep(TTL_S + 3 * STEP_S)  # the thread stopped: the leases run out
    assert await owners(aredis) == [None] * 4
