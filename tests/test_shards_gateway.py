"""Two gateways split the symbols through leases; kill one, the other ingests its symbols
again within 5 s, and no trade id is written twice (or out of order) in any stream. With the
sim source; and with the Binance source on the local Binance-protocol server, where the
survivor's REST back-fill must also fill the gap the dead one left: no aggregate trade id
missing either."""

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.configstore import set_pairs
from spreadbus.bus.lease import share_of
from spreadbus.config import Settings
from spreadbus.testing.binance_server import BinanceServer
from spreadbus.testing.shards import (
    start_share_process,
    stop_processes,
    takes_at_most,
    until,
)

pytestmark = pytest.mark.slow
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/BNBUSDT")  # share 1: BTCUSDT; share 0: the others
SYMBOLS = ("ETHUSDT", "BTCUSDT", "SOLUSDT", "BNBUSDT")
TAKEOVER_S = 5.0


def start_gateway(
    url: str, instance: str, data_dir: Path, source: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = source or {"SPREADBUS_SOURCE": "sim"}
    return start_share_process("gateway", url, instance, data_dir, extra_env=env)


async def split(client: aioredis.Redis) -> list[Any] | None:
    """The owners of shares 0 and 1 once two different processes hold them."""
    owners = [await client.get(keys.lease("gateway", s)) for s in (0, 1)]
    return owners if None not in owners and owners[0] != owners[1] else None


def owner_of(owner: bytes, processes: dict[str, subprocess.Popen[bytes]]) -> str:
    return next(n for n, p in processes.items() if f":{p.pid}:" in owner.decode())


async def trade_ids(client: aioredis.Redis, symbol: str) -> list[int]:
    entries: Any = await client.xrange(keys.tick_stream(symbol))
    return [int(entry_id.decode().split("-")[1]) for entry_id, _ in entries]


async def test_killing_one_of_two_gateways_hands_its_symbols_over_without_duplicates(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    assert {share_of(s, 2) for s in SYMBOLS} == {0, 1}
    await set_pairs(aredis, PAIRS)
    gateways = {n: start_gateway(settings.redis_url or "", n, data_dir) for n in ("a", "b")}
    try:
        owners = await until(lambda: split(aredis), 90, "each gateway to hold one share")

        async def lengths() -> dict[str, int]:
            return {s: await aredis.xlen(keys.tick_stream(s)) for s in SYMBOLS}

        async def grown(since: dict[str, int], symbols: tuple[str, ...] = SYMBOLS) -> bool:
            now = await lengths()  # the sim's trade clock is its own: count entries instead
            return all(now[s] >= since[s] + 5 for s in symbols)

        at_split = await lengths()
        await until(lambda: grown(at_split), 30, "every symbol's ticks")
        victim = owner_of(owners[0], gateways)
        os.kill(gateways[victim].pid, signal.SIGKILL)
        gateways[victim].wait(5)
        at_kill = await lengths()  # the dead one writes nothing more from here
        orphans = tuple(s for s in SYMBOLS if share_of(s, 2) == 0)
        await takes_at_most(
            lambda: grown(at_kill, orphans), TAKEOVER_S, "the killed gateway's symbols flowing"
        )
        assert await aredis.get(keys.lease("gateway", 0)) == owners[1]
        await asyncio.sleep(1.0)
    finally:
        stop_processes(gateways)
    for symbol in SYMBOLS:
        ids = await trade_ids(aredis, symbol)
        # the order check below is not vacuous: every symbol grew after the split, and the
        # orphans again after the kill (the survivor's own symbols need not grow after it)
        assert len(ids) >= at_kill[symbol] + (5 if symbol in orphans else 0), symbol
        bad = [i for i in range(1, len(ids)) if ids[i] <= ids[i - 1]]
        assert not bad, f"{symbol}: a trade id twice or out of order: " + str(
            [ids[j] for i in bad[:3] for j in (i - 1, i)]
        )


class Exchange:
    """Aggregate trades of every symbol every 20 ms on the local Binance-protocol server."""

    def __init__(self, server: BinanceServer) -> None:
        self.server = server
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for i, symbol in enumerate(SYMBOLS):
                price = f"{100 + i + (self.published % 50) / 100:.2f}"
                self.server.publish_agg_trade(symbol, price, "0.010")
            self.published += 1
            await asyncio.sleep(0.02)


async def test_after_a_binance_gateway_is_killed_the_survivor_back_fills_the_gap(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    """kill -9 the gateway holding share 0 while trades keep flowing: the survivor takes the
    share, resumes after the bus's last trade of each symbol, and its REST back-fill fetches
    what the dead one never wrote. Afterwards each stream holds every aggregate trade id the
    exchange published from its first one on, once and in order."""
    await set_pairs(aredis, PAIRS)
    async with BinanceServer(max_messages_per_second=None) as server:
        server.listed_symbols = list(SYMBOLS)
        source = {
            "SPREADBUS_SOURCE": "binance",
            "SPREADBUS_BINANCE_WS_URL": server.ws_url,
            "SPREADBUS_BINANCE_REST_URL": server.rest_url,
        }
        url = settings.redis_url or ""
        gateways = {n: start_gateway(url, n, data_dir, source) for n in ("a", "b")}
        exchange = Exchange(server)
        stop = asyncio.Event()
        publishing = asyncio.create_task(exchange.run(stop))
        try:
            owners = await until(lambda: split(aredis), 90, "each gateway to hold one share")

            async def flowing(after: dict[str, int], symbols: tuple[str, ...]) -> bool:
                now = {s: await aredis.xlen(keys.tick_stream(s)) for s in symbols}
                return all(now[s] >= after.get(s, 0) + 10 for s in symbols)

            await until(lambda: flowing({}, SYMBOLS), 60, "every symbol's trades on the bus")
            victim = owner_of(owners[0], gateways)
            os.kill(gateways[victim].pid, signal.SIGKILL)
            gateways[victim].wait(5)
            orphans = tuple(s for s in SYMBOLS if share_of(s, 2) == 0)
            at_kill = {s: await aredis.xlen(keys.tick_stream(s)) for s in orphans}
            await takes_at_most(
                lambda: flowing(at_kill, orphans), TAKEOVER_S,
                "the killed Binance gateway's symbols flowing",
            )  # fmt: skip
            assert await aredis.get(keys.lease("gateway", 0)) == owners[1]
            await asyncio.sleep(0.5)  # a few more trades after the takeover
        finally:
            stop.set()
            await publishing
        try:
            published = {s: [r["a"] for r in server.agg_trades(s)] for s in SYMBOLS}

            async def complete() -> bool:  # the survivor wrote up to the last trade
                lasts = [(await trade_ids(aredis, s))[-1:] for s in SYMBOLS]
                return lasts == [published[s][-1:] for s in SYMBOLS]

            await until(complete, 30, "every symbol's last trade on the bus")
            survivor = owner_of(owners[1], gateways)

            async def counted() -> int:  # its heartbeat after the fill
                filled = await aredis.hget(keys.health(f"gateway-{survivor}"), "backfilled")
                return int(filled or 0)

            # not vacuous: the survivor found the gap and filled it from REST
            backfilled = await until(counted, 10, "the survivor's back-fill in its heartbeat")
            print(f"back-filled by the survivor: {backfilled} trades")
        finally:
            stop_processes(gateways)
    for symbol in SYMBOLS:
        ids = await trade_ids(aredis, symbol)
        expected = [a for a in published[symbol] if a >= ids[0]]
        missing = sorted(set(expected) - set(ids))
        assert ids == expected, (
            f"{symbol}: {len(missing)} trade ids missing (first {missing[:5]}), "
            f"{len(ids) - len(set(ids))} twice"
        )
