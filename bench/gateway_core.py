"""One run of the gateway's core in this process, for ``bench gateway_core``: frames straight
into :class:`~spreadbus.gateway.ingest.Ingest` (parse, dedupe, ghost, batch) and flushed to
Redis with the gateway's writer, no WebSocket in front. Run as
``python -m bench.gateway_core URL COUNT FIRST_ID`` with whichever ``spreadbus`` is first on
``PYTHONPATH``; prints JSON: this process's and Redis's CPU microseconds per tick, and the
cyclic collector's longest pause and total time during the run (the service's collector
settings, :mod:`spreadbus.heap`, applied as the gateway does once ready; a tree without them
runs with CPython's)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from bench.cpu import redis_cpu_s
from spreadbus.bus.codec import epoch_ms
from spreadbus.bus.service import EventLog
from spreadbus.bus.ticks import TickWriter
from spreadbus.gateway.ghost import GhostConfig, GhostVenue
from spreadbus.gateway.ingest import Ingest, IngestConfig
from spreadbus.testing.binance_server import build_agg_trade_frames

SYMBOLS = [f"B{i:02d}USDT" for i in range(50)]
# about what a 2 ms batch holds at 200k frames/s; BENCH_GATEWAY_CORE_FLUSH=20 is a paced
# 10k/s feed's batch, where a flush's fixed cost (per call and per symbol) shows
FRAMES_PER_FLUSH = int(os.environ.get("BENCH_GATEWAY_CORE_FLUSH", "400"))


async def main(url: str, count: int, first_id: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    sync = redis.Redis.from_url(url)
    writer = TickWriter(client)
    await writer.prepare(SYMBOLS)
    config = IngestConfig()
    ingest = Ingest(writer, GhostVenue(GhostConfig(), 1), EventLog("gateway"), config, set(SYMBOLS))
    frames = build_agg_trade_frames(SYMBOLS, count, first_agg_id=first_id)
    with contextlib.suppress(ImportError):  # a baseline tree from before spreadbus.heap
        from spreadbus import heap

        heap.settle()
    pauses_ms: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses_ms.append((time.perf_counter() - began[0]) * 1000.0)

    gc.callbacks.append(timed)
    cpu, server = time.process_time(), redis_cpu_s(sync)
    for start in range(0, count, FRAMES_PER_FLUSH):
        for frame in frames[start : start + FRAMES_PER_FLUSH]:
            ingest.on_frame(frame, epoch_ms(), "binance")
        await ingest.flush()
    await ingest.drain()
    cpu, server = time.process_time() - cpu, redis_cpu_s(sync) - server
    gc.callbacks.remove(timed)
    await client.aclose()
    if ingest.counters["published"] != count or ingest.counters["ghost_published"] != count:
        raise SystemExit(f"published {dict(ingest.counters)} of {count}")
    return {
        "process_us": cpu / count * 1e6,
        "redis_us": server / count * 1e6,
        "gc_max_ms": max(pauses_ms, default=0.0),
        "gc_total_ms": sum(pauses_ms),
    }


if __name__ == "__main__":
    url, count, first_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(orjson.dumps(asyncio.run(main(url, count, first_id))).decode())
