"""Scale-out on this machine: 1 against 2 engine processes, 1 against 2 tick writers.

**Engines** (``spreadbus engine --shard auto``, the processes of ``spreadbus up --engines
M``): 25 pairs (a chain over 26 symbols, as in bench_engine) and a backlog of
:data:`BACKLOG_TICKS` real ticks already in the streams; each share's cursor is set to the
streams' start, so the engines must process the whole backlog. Throughput = stream entries
drained per second between 20% and 80% of the way (the slowest share decides: a shared leg
is read by both), measured from the shares' cursor counts. With M=2 each process serves about
half of the pairs; a leg in pairs of both shares is read twice, which is what sharding costs.

**Tick writers** (the gateway's write path, :class:`~spreadbus.bus.ticks.TickWriter`: one
FCALL per flush): 1 process writing all 26 symbols against 2 processes writing 13 each, each
as fast as it can, :data:`WRITE_FLUSHES` flushes of 1,000 ticks (with ghost twins) made
before the clock starts; CPU is the process's own (``process_time``) and Redis's main thread's
(``INFO cpu``).

Everything runs on one embedded Redis on this 2-core machine shared with other work: the
ratio 2-process / 1-process, measured in the same run, is the figure that counts, with the
CPU of each process (share of one core) next to it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aioredis

from bench.bench_engine import PAIRS, SYMBOLS, Market, cpu_seconds
from bench.scratch import in_scratch_dir
from spreadbus.bus import keys
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.bus.lease import share_of
from spreadbus.bus.ticks import TickWriter
from spreadbus.engine.consumer import load_cursor
from spreadbus.proc import free_port, terminate

BACKLOG_TICKS: Final = 150_000
WRITE_FLUSHES: Final = 60
WRITE_BATCH: Final = 1_000


async def _fill(client: aioredis.Redis) -> int:
    writer = TickWriter(client)
    await writer.prepare(SYMBOLS)
    market = Market()
    start_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: 1 ms per batch of 26
    written = 0
    for step in range(BACKLOG_TICKS // len(SYMBOLS)):
        batches = market.ticks(len(SYMBOLS), start_ms + step * 20, float(start_ms + step * 20))
        for batch in batches.values():
            batch.ghosts.clear()
        written += (await writer.write(batches)).added
    return written


def _share_streams(shards: int) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {s: set() for s in range(shards)}
    for pair in PAIRS:
        out[share_of(pair, shards)] |= {keys.tick_stream(s) for s in pair.split("/")}
    return out


async def redis_cpu(client: aioredis.Redis) -> float:
    """Seconds of CPU Redis's main thread has used (``INFO cpu``)."""
    info: Any = await client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


async def _engines(client: aioredis.Redis, url: str, tmp: Path, shards: int) -> dict[str, Any]:
    """Drain the backlog with ``shards`` engine processes; rate and CPU per process."""
    await client.delete(*(keys.lease("engine", s) for s in range(4)), keys.lease_members("engine"))
    streams = _share_streams(shards)
    need = {s: sum([await client.xlen(k) for k in ks]) for s, ks in streams.items()}
    for shard, names in streams.items():
        cursor = keys.engine_share_cursor(shard, shards)
        await client.delete(cursor)
        await client.hset(cursor, mapping=dict.fromkeys(names, "0-0"))
    if shards > 1:
        # A placeholder member, so that the first process up takes only its fair part
        # instead of every share (it would serve them all until the others started).
        placeholder = {"bench-placeholder": time.time() * 1000 + 60_000}
        await client.zadd(keys.lease_members("engine"), placeholder)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPREADBUS_")},
        "SPREADBUS_REDIS_URL": url,
        "SPREADBUS_DATA_DIR": str(tmp / "data"),
        "SPREADBUS_PAIRS": ",".join(PAIRS),
        "SPREADBUS_SHARD": "auto",
        "SPREADBUS_ENGINES": str(shards),
        "SPREADBUS_CONSOLE_LEVEL": "ERROR",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spreadbus", "engine"],
            env={**env, "SPREADBUS_INSTANCE": f"bench{i}"},
        )
        for i in range(shards)
    ]
    try:

        async def progress() -> float:
            done = []
            for shard in streams:
                cursor = await load_cursor(client, keys.engine_share_cursor(shard, shards))
                done.append(sum(p.processed for p in cursor.values()) / need[shard])
            return min(done)

        marks: dict[float, tuple[float, list[float]]] = {}
        deadline = time.monotonic() + 300
        while len(marks) < 2 and time.monotonic() < deadline:
            value = await progress()
            for mark in (0.2, 0.8):
                if value >= mark and mark not in marks:
                    cpu = [cpu_seconds(p.pid) for p in procs] + [await redis_cpu(client)]
                    marks[mark] = (time.monotonic(), cpu)
            await asyncio.sleep(0.05)
        if len(marks) < 2:
            raise RuntimeError(f"{shards} engine(s) did not drain the backlog in 300 s")
        (t0, cpu0), (t1, cpu1) = marks[0.2], marks[0.8]
        entries = 0.6 * sum([await client.xlen(keys.tick_stream(s)) for s in SYMBOLS])
        cpu = [(b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1, strict=True)]
        return {"rate": entries / (t1 - t0), "cpu": cpu[:-1], "redis": cpu[-1]}
    finally:
        for proc in procs:
            terminate(proc, 15)


_WRITER: Final = """
import asyncio, sys, time
import redis.asyncio as aioredis
from bench.bench_engine import Market, SYMBOLS
from spreadbus.bus.ticks import TickWriter

async def main(url, part, parts, flushes, batch):
    client = aioredis.Redis.from_url(url)
    writer = TickWriter(client)
    mine = SYMBOLS[part::parts]
    market = Market(seed=part)
    trade_ms = int(time.time() * 1000) - 1_800_000
    ready = []  # made before the clock starts: only the writes are timed
    for i in range(flushes):
        batches = market.ticks(batch, trade_ms + i, float(trade_ms + i))
        ready.append({s: b for s, b in batches.items() if s in mine})
    sys.stdin.readline()  # go
    sent, began, cpu = 0, time.monotonic(), time.process_time()
    for batches in ready:
        sent += (await writer.write(batches)).added
    wall, cpu = time.monotonic() - began, time.process_time() - cpu
    print(sent, wall, cpu, flush=True)
    await client.aclose()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                 int(sys.argv[5])))
"""


async def _writers(client: aioredis.Redis, url: str, parts: int) -> dict[str, Any]:
    """``parts`` writer processes on disjoint symbols, started together once their ticks are
    made; real ticks/s in total (all written / the slowest's time), CPU of each."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                url,
                str(i),
                str(parts),
                str(WRITE_FLUSHES),
                str(WRITE_BATCH * parts),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(parts)
    ]
    await asyncio.sleep(1.0)
    cpu0 = await redis_cpu(client)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [p.communicate(timeout=300)[0].split() for p in procs]
    redis_s = await redis_cpu(client) - cpu0
    sent = sum(int(r[0]) for r in results)
    wall = max(float(r[1]) for r in results)
    return {
        "rate": sent / wall,
        "cpu": [float(r[2]) / wall for r in results],
        "redis": redis_s / wall,
    }


def _rows(kind: str, unit: str, one: dict[str, Any], two: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"case": f"{kind} x1", "metric": "throughput", "value": one["rate"], "unit": unit},
        {"case": f"{kind} x2", "metric": "throughput", "value": two["rate"], "unit": unit,
         "reference": one["rate"], "ratio": two["rate"] / one["rate"]},
    ]  # fmt: skip
    for case, result in ((f"{kind} x1", one), (f"{kind} x2", two)):
        for i, share in enumerate(result["cpu"]):
            rows.append({"case": case, "metric": f"process {i + 1} CPU",
                         "value": 100.0 * share, "unit": "% of a core"})  # fmt: skip
        rows += [
            {"case": case, "metric": "redis CPU", "value": 100.0 * result["redis"],
             "unit": "% of a core"},
            {"case": case, "metric": "process CPU per unit", "unit": "us",
             "value": 1e6 * sum(result["cpu"]) / result["rate"]},
            {"case": case, "metric": "redis CPU per unit", "unit": "us",
             "value": 1e6 * result["redis"] / result["rate"]},
        ]  # fmt: skip
    return rows


async def _run(tmp: Path) -> list[dict[str, Any]]:
    server = EmbeddedRedis(tmp / "redis", port=free_port())
    server.start()
    try:
        client = aioredis.Redis.from_url(server.url)
        await _fill(client)
        load = os.getloadavg()[0]
        one = await _engines(client, server.url, tmp, 1)
        two = await _engines(client, server.url, tmp, 2)
        rows = _rows("engines", "entries/s", one, two)
        w1 = await _writers(client, server.url, 1)
        w2 = await _writers(client, server.url, 2)
        rows += _rows("tick writers", "ticks/s", w1, w2)
        # the machine is shared: how busy it was says how much of the 2 cores was ours
        rows.append({"case": "machine", "metric": "load average (1 min) at start",
                     "value": load, "unit": "runnable", "reference": float(os.cpu_count() or 1),
                     "ratio": load / (os.cpu_count() or 1)})  # fmt: skip
        await client.aclose()
        return rows
    finally:
        server.stop()


def run() -> list[dict[str, Any]]:
    return in_scratch_dir(_run)


if __name__ == "__main__":
    for row in run():
        print(row)
