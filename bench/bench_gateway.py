"""Gateway ingest benchmark: the local Binance-protocol server firehoses aggTrade frames for 50
symbols into a real ``spreadbus gateway`` process; we time the full path (parse, ghost, both
streams, TimeSeries) until every tick is in Redis. The ceiling, measured in the same run on the
same Redis: ``redis-benchmark`` pipelined XADD of an entry with the same nine fields.

Also: the p99 batch-flush delay at a paced 10,000 ticks/s, from a tick's receipt until Redis has
acknowledged the write of its batch (the gateway samples the oldest tick of every batch), once
with frames sent every millisecond and once in bursts of 100 frames every 10 ms.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis

from bench.wakeup import WakeupProbe
from spreadbus.bus import keys
from spreadbus.bus.embedded import EmbeddedRedis, binary, server_env
from spreadbus.gateway.binance import stream_name
from spreadbus.proc import free_port, terminate
from spreadbus.testing.binance_server import BinanceServer, build_agg_trade_frames

SYMBOLS = [f"B{i:02d}USDT" for i in range(50)]
PAIRS = ",".join(f"{SYMBOLS[i]}/{SYMBOLS[i + 1]}" for i in range(0, 50, 2))
FIREHOSE_TICKS = int(os.environ.get("BENCH_GATEWAY_TICKS", "200000"))
PACED_RATE = 10_000
PACED_SECONDS = 6


def redis_benchmark_xadd(server: EmbeddedRedis, password: str, requests: int = 200_000) -> float:
    """Pipelined (-P 64) XADD of a nine-field entry: what Redis alone can take, requests/s."""
    fields = ["symbol", "B00USDT", "id", "1", "price", "98231.40", "qty", "0.012", "side", "buy",
              "T", "1795314919485", "E", "1795314919490", "recv", "1795314919491.123",
              "src", "binance"]  # fmt: skip
    done = subprocess.run(
        [str(binary("redis-benchmark")), "-p", str(server.port), "-a", password, "-n",
         str(requests), "-P", "64", "-q", "XADD", "bench:xadd", "*", *fields],
        env=server_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"([\d.]+) requests per second", done.stdout)
    if not match:
        raise RuntimeError(f"unexpected redis-benchmark output: {done.stdout!r}")
    return float(match.group(1))


async def _quiet_redis(client: redis.Redis) -> None:
    """Start a paced phase on an empty Redis that is not rewriting its AOF: the firehose
    leaves ~100 MB of AOF behind, and a rewrite (a forked child) running through the phase
    would be one more process on the two cores, measured as gateway latency."""
    client.flushall()
    for _ in range(600):
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("rdb_bgsave_in_progress"):
            return
        await asyncio.sleep(0.1)


async def _start_gateway(fake: BinanceServer, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``spreadbus gateway`` process, once it has subscribed to every symbol."""
    gateway = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "gateway"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for symbol in SYMBOLS:
        await fake.wait_for_subscribers(stream_name(symbol), timeout=30)
    return gateway


async def _send_paced(fake: BinanceServer, frames: list[bytes], slice_s: float) -> None:
    """``frames`` at :data:`PACED_RATE`: every ``slice_s`` seconds, the frames due by then."""
    begin = time.perf_counter()
    sent = 0
    while sent < len(frames):
        due = min(len(frames), int((time.perf_counter() - begin) * PACED_RATE) + 1)
        if due > sent:
            await fake.firehose(frames[sent:due])
            sent = due
        await asyncio.sleep(max(0.0, begin + (sent / PACED_RATE) + slice_s - time.perf_counter()))


def total_ticks(client: redis.Redis) -> int:
    with client.pipeline(transaction=False) as pipe:
        for symbol in SYMBOLS:
            pipe.xlen(keys.tick_stream(symbol))
        return sum(pipe.execute())


def gateway_counters(client: redis.Redis) -> dict[str, Any]:
    raw = client.hget(keys.health("gateway"), "counters")
    return orjson.loads(raw) if raw else {}


async def _run(data: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    server = EmbeddedRedis(data, port=free_port())
    url = server.start()
    password = (data / "redis" / "password").read_text().strip()
    client = redis.Redis.from_url(url)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        ceiling = redis_benchmark_xadd(server, password)
        client.delete("bench:xadd")
        async with BinanceServer(ping_interval=None, max_streams=1024) as fake:
            env = {
                **os.environ,
                "SPREADBUS_REDIS_URL": url,
                "SPREADBUS_DATA_DIR": str(data),
                "SPREADBUS_SOURCE": "binance",
                "SPREADBUS_BINANCE_WS_URL": fake.ws_url,
                "SPREADBUS_BINANCE_REST_URL": fake.rest_url,
                "SPREADBUS_PAIRS": PAIRS,
                "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
                "SPREADBUS_LOG_LEVEL": "WARNING",
            }
            gateway = await _start_gateway(fake, env)

            # 1. Sustained ingest: as fast as the gateway takes.
            frames = build_agg_trade_frames(SYMBOLS, FIREHOSE_TICKS, first_agg_id=1)
            started = time.perf_counter()
            await fake.firehose(frames)
            while total_ticks(client) < FIREHOSE_TICKS:
                if time.perf_counter() - started > 60:
                    raise RuntimeError(
                        f"only {total_ticks(client)} of {FIREHOSE_TICKS} arrived; gateway "
                        f"counters: {gateway_counters(client)}"
                    )
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            rate = FIREHOSE_TICKS / elapsed
            rows.append({"case": "50 symbols, firehose", "metric": "sustained ingest",
                         "value": rate, "unit": "ticks/s",
                         "reference": ceiling, "ratio": rate / ceiling})  # fmt: skip
            rows.append({"case": "50 symbols, firehose", "metric": "target 100,000 ticks/s",
                         "value": rate / 100_000, "unit": "x target"})  # fmt: skip

            # 2. Flush delay at a paced 10,000 ticks/s, steady and in bursts (a fresh process
            #    for each, so each has its own percentiles).
            first_id = FIREHOSE_TICKS + 1
            for label, slice_s in (("steady, sent every 1 ms", 0.001),
                                   ("bursts of 100 every 10 ms", 0.01)):  # fmt: skip
                terminate(gateway, 10)
                await _quiet_redis(client)
                gateway = await _start_gateway(fake, env)
                paced = build_agg_trade_frames(
                    SYMBOLS, PACED_RATE * PACED_SECONDS, first_agg_id=first_id,
                    start_time_ms=int(time.time() * 1000),
                )  # fmt: skip
                first_id += len(paced)
                with WakeupProbe(PACED_SECONDS) as probe:
                    await _send_paced(fake, paced, slice_s)
                await asyncio.sleep(1.5)  # one more heartbeat with the final percentiles
                counters = gateway_counters(client)
                p99 = float(counters.get("batch_latency_p99_ms", "nan"))
                p50 = float(counters.get("batch_latency_p50_ms", "nan"))
                case = f"{PACED_RATE:,} ticks/s, {label}"
                rows.append({"case": case, "metric": "batch flush delay p50", "value": p50,
                             "unit": "ms"})  # fmt: skip
                rows.append({"case": case, "metric": "batch flush delay p99", "value": p99,
                             "unit": "ms", "reference": 5.0, "ratio": p99 / 5.0})  # fmt: skip
                rows += probe.rows(case)
    finally:
        if gateway is not None:
            terminate(gateway, 10)
        client.close()
        server.stop()
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="spreadbus-bench-") as tmp:
        return asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    for row in run():
        print(row)
