"""Cost per pair: one ``spreadbus engine`` process at a fixed tick rate with 5, 25 and 100 pairs.

The same :data:`RATE` real ticks/s (each with its ghost twin, as the gateway writes them) go
into the streams of the pairs' legs, written by the gateway's own TickWriter as in
bench_engine; only the number of pairs changes (5 pairs over 10 symbols, 25 over 26, 100
over 26). Each case runs a fresh engine (warm windows from 330 s of history, so the scheduled
statistics run as in production), lets it settle for :data:`SETTLE_S`, then measures
:data:`MEASURE_S` (each case twice, in the order :data:`ORDER`, summed): the engine
process's CPU (user + system, all threads; the OU fits' worker process is added), Redis's
main thread, and the pair updates the engine reports itself (``pair_updates`` in its
heartbeat: one per pair and batch that moved it, each a snapshot write).

Figures: CPU per pair update (the whole engine's CPU divided by its pair updates) and the
marginal cost, the slope of CPU against pair updates and against pairs from 5 to 100 pairs
(what one more pair adds at this tick rate, the per-tick work being the same in all cases).
The analytics run on a 1 s grid, so a pair is updated about once a second (plus the results
of its scheduled statistics), whatever the tick rate.
The machine is shared: a same-run comparison between the cases is what counts.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import redis
import redis.asyncio as aioredis

from bench.bench_engine import SYMBOLS, Market, engine_env, wait_until_started, write_history
from bench.cpu import process_cpu_s, redis_cpu_s
from spreadbus.bus import keys
from spreadbus.bus.codec import epoch_ms
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.bus.ticks import TickWriter
from spreadbus.proc import free_port, terminate

RATE: Final = 4_000  # real ticks/s into the legs' streams, in every case
SETTLE_S: Final = 4.0
MEASURE_S: Final = 8.0
ORDER: Final = (5, 25, 100, 100, 25, 5)  # each case twice, in both orders: drift cancels
FLUSH_S: Final = 0.002


def pair_sets() -> dict[int, list[str]]:
    """5 disjoint pairs over 10 symbols; 25 and 100 pairs over all 26 (a chain, then every
    other ordered combination in a fixed order until 100)."""
    chain = [f"{SYMBOLS[i + 1]}/{SYMBOLS[i]}" for i in range(25)]
    more = [f"{y}/{x}" for x, y in itertools.permutations(SYMBOLS, 2) if f"{y}/{x}" not in chain]
    return {
        5: [f"{SYMBOLS[2 * i + 1]}/{SYMBOLS[2 * i]}" for i in range(5)],
        25: chain,
        100: chain + more[:75],
    }


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (the engine's OU-fit worker), from /proc."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    total = 0.0
    for one in pids:
        try:
            total += process_cpu_s(one)
        except FileNotFoundError:  # a child that ended meanwhile
            continue
    return total


async def produce(writer: TickWriter, market: Market, legs: set[str], seconds: float) -> int:
    """:data:`RATE` real ticks/s (and ghosts) on ``legs`` only, for ``seconds``."""
    share = len(SYMBOLS) / len(legs)  # the market spreads over all symbols: keep the legs'
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(RATE * elapsed) - sent
        if due > 0:
            recv = epoch_ms()
            batches = market.ticks(round(due * share), int(recv), recv)
            for symbol in [s for s in batches if s not in legs]:
                del batches[symbol]
            await writer.write(batches)
            sent += due
        await asyncio.sleep(FLUSH_S)
    return sent


async def _counter(client: aioredis.Redis, name: str) -> int:
    value = await client.hget(keys.health("engine"), name)
    return int(value or 0)


async def _case(
    client: aioredis.Redis, server: EmbeddedRedis, tmp: Path, pairs: list[str], market: Market
) -> dict[str, float]:
    # start at the stream heads, with this case's pairs (config:pairs wins over the setting)
    await client.delete(keys.engine_cursor(), keys.health("engine"), keys.CONFIG_PAIRS)
    env = engine_env(server.url, tmp / "data", pairs, heartbeat_s=0.5)
    engine = subprocess.Popen([sys.executable, "-m", "spreadbus", "engine"], env=env)
    writer = TickWriter(client)
    redis_sync = redis.Redis.from_url(server.url)
    legs = {s for p in pairs for s in p.split("/")}
    try:

        async def ready() -> bool:  # its heartbeat counts the pairs
            return await _counter(client, "pairs") == len(pairs)

        await wait_until_started(engine, ready, 120.0)
        await produce(writer, market, legs, SETTLE_S)
        updates0 = await _counter(client, "pair_updates")
        ticks0 = await _counter(client, "ticks")
        cpu0, redis0, began = tree_cpu_s(engine.pid), redis_cpu_s(redis_sync), time.monotonic()
        await produce(writer, market, legs, MEASURE_S)
        cpu1, redis1, ended = tree_cpu_s(engine.pid), redis_cpu_s(redis_sync), time.monotonic()
        await asyncio.sleep(1.2)  # a heartbeat after the phase: counts up to its end
        updates = await _counter(client, "pair_updates") - updates0
        entries = await _counter(client, "ticks") - ticks0
        return {
            "seconds": ended - began,
            "engine_cpu_s": cpu1 - cpu0,
            "redis_cpu_s": redis1 - redis0,
            "pair_updates": float(updates),
            "entries": float(entries),
        }
    finally:
        terminate(engine, 15)
        redis_sync.close()


async def _run(tmp: Path) -> list[dict[str, Any]]:
    server = EmbeddedRedis(tmp / "redis", port=free_port())
    server.start()
    try:
        client = aioredis.Redis.from_url(server.url)
        writer = TickWriter(client)
        await writer.prepare(SYMBOLS)
        market = Market()
        await write_history(writer, market, int(epoch_ms()))
        sets = pair_sets()
        runs = [(n, await _case(client, server, tmp, sets[n], market)) for n in ORDER]
        cases = {n: {k: sum(r[k] for m, r in runs if m == n) for k in runs[0][1]} for n in sets}
        await client.aclose()
    finally:
        server.stop()
    return _rows(cases)


def _rows(cases: dict[int, dict[str, float]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    name = "paircost"
    for n, c in cases.items():
        per_s = 1.0 / c["seconds"]
        label = f"{n} pairs, {RATE} ticks/s"
        rows += [
            {"benchmark": name, "metric": f"{label}: engine CPU", "unit": "% of a core",
             "value": round(100 * c["engine_cpu_s"] * per_s, 1)},
            {"benchmark": name, "metric": f"{label}: Redis main thread CPU", "unit": "% of a core",
             "value": round(100 * c["redis_cpu_s"] * per_s, 1)},
            {"benchmark": name, "metric": f"{label}: pair updates", "unit": "per s",
             "value": round(c["pair_updates"] * per_s, 1)},
            {"benchmark": name, "metric": f"{label}: stream entries read", "unit": "per s",
             "value": round(c["entries"] * per_s, 1)},
            {"benchmark": name, "metric": f"{label}: engine CPU per pair update", "unit": "µs",
             "value": round(1e6 * c["engine_cpu_s"] / max(c["pair_updates"], 1), 1)},
        ]  # fmt: skip
    low, high = cases[min(cases)], cases[max(cases)]

    def rate(case: dict[str, float], name: str) -> float:
        return case[name] / case["seconds"]

    extra_updates = rate(high, "pair_updates") - rate(low, "pair_updates")
    for part in ("engine", "redis"):
        extra_cpu = rate(high, f"{part}_cpu_s") - rate(low, f"{part}_cpu_s")
        rows.append({
            "benchmark": name, "unit": "% of a core",
            "value": round(100 * extra_cpu / (max(cases) - min(cases)), 4),
            "metric": f"marginal {part} CPU per pair ({min(cases)} -> {max(cases)} pairs, "
            f"same {RATE} ticks/s)",
        })  # fmt: skip
        if extra_updates > 0:
            rows.append({
                "benchmark": name, "unit": "µs", "value": round(1e6 * extra_cpu / extra_updates, 1),
                "metric": f"marginal {part} CPU per pair update ({min(cases)} -> {max(cases)} "
                f"pairs, same {RATE} ticks/s)",
            })  # fmt: skip
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-paircost-") as tmp:
        return asyncio.run(_run(Path(tmp)))
