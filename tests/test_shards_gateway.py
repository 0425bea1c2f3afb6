"""Two sim gateways split the symbols through leases; kill one, the other ingests its symbols
again within 5 s, and no trade id is written twice (or out of order) in any stream."""

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
from spreadbus.testing.shards import start_share_process, takes_at_most, until

pytestmark = pytest.mark.slow
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/BNBUSDT")  # share 1: BTCUSDT; share 0: the others
SYMBOLS = ("ETHUSDT", "BTCUSDT", "SOLUSDT", "BNBUSDT")
TAKEOVER_S = 5.0


def start_gateway(url: str, instance: str, data_dir: Path) -> subprocess.Popen[bytes]:
    return start_share_process(
        "gateway", url, instance, data_dir, extra_env={"SPREADBUS_SOURCE": "sim"}
    )


async def test_killing_one_of_two_gateways_hands_its_symbols_over_without_duplicates(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    assert {share_of(s, 2) for s in SYMBOLS} == {0, 1}
    await set_pairs(aredis, PAIRS)
    gateways = {n: start_gateway(settings.redis_url or "", n, data_dir) for n in ("a", "b")}
    try:

        async def split() -> list[Any] | None:
            owners = [await aredis.get(keys.lease("gateway", s)) for s in (0, 1)]
            return owners if None not in owners and owners[0] != owners[1] else None

        owners = await until(split, 90, "each gateway to hold one share")

        async def lengths() -> dict[str, int]:
            return {s: await aredis.xlen(keys.tick_stream(s)) for s in SYMBOLS}

        async def grown(since: dict[str, int], symbols: tuple[str, ...] = SYMBOLS) -> bool:
            now = await lengths()  # the sim's trade clock is its own: count entries instead
            return all(now[s] >= since[s] + 5 for s in symbols)

        at_split = await lengths()
        await until(lambda: grown(at_split), 30, "every symbol's ticks")
        victim_owner = owners[0].decode()
        victim = next(n for n, p in gateways.items() if f":{p.pid}:" in victim_owner)
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
        for process in gateways.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(20)
    for symbol in SYMBOLS:
        entries: Any = await aredis.xrange(keys.tick_stream(symbol))
        ids = [int(entry_id.decode().split("-")[1]) for entry_id, _ in entries]
        # the order check below is not vacuous: every symbol grew after the split, and the
        # orphans again after the kill (the survivor's own symbols need not grow after it)
        assert len(ids) >= at_kill[symbol] + (5 if symbol in orphans else 0), symbol
        bad = [i for i in range(1, len(ids)) if ids[i] <= ids[i - 1]]
        assert not bad, f"{symbol}: a trade id twice or out of order: " + str(
            [entries[j][0] for i in bad[:3] for j in (i - 1, i)]
        )
