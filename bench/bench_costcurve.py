"""How the gateway's cost grows: with the number of symbols, and with the rate.

1. Symbols (10, 50, 200), each on a fresh gateway and an emptied Redis: the firehose (the
   local Binance server sends :data:`TICKS` aggTrade frames as fast as it can) gives sustained
   ticks/s and the gateway's and Redis's CPU per tick; then a paced 10,000 ticks/s gives the
   batch flush delay.
2. Rate (1k, 5k, 10k, 20k ticks/s) over 50 symbols: the flush delay p50/p99 and the gateway's
   CPU, each p99 against the OS wake-up probe's p99 over the same seconds.

Everything runs on one machine (server, gateway, Redis, probe), so every row is to be read
against its same-run reference, never as an absolute. ``BENCH_COSTCURVE_SYMBOLS`` and
``BENCH_COSTCURVE_RATES`` (comma separated) change the grid.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Final

import redis

from bench.bench_gateway import (
    PACED_SECONDS,
    firehose,
    gateway_env,
    paced,
    pairs_of,
    redis_benchmark_xadd,
    start_gateway,
    total_ticks,
)
from bench.scratch import in_scratch_dir
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.proc import free_port
from spreadbus.testing.binance_server import BinanceServer

TICKS: Final = 60_000
SYMBOL_COUNTS = [int(n) for n in os.environ.get("BENCH_COSTCURVE_SYMBOLS", "10,50,200").split(",")]
RATES = [
    int(n) for n in os.environ.get("BENCH_COSTCURVE_RATES", "1000,5000,10000,20000").split(",")
]
STEADY_S: Final = 0.001  # frames sent every millisecond


async def _run(data: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    server = EmbeddedRedis(data, port=free_port())
    url = server.start()
    password = (data / "redis" / "password").read_text().strip()
    client = redis.Redis.from_url(url)
    first_id = 1
    try:
        ceiling = redis_benchmark_xadd(server, password)
        client.delete("bench:xadd")
        async with BinanceServer(ping_interval=None, max_streams=1024) as fake:
            for count in SYMBOL_COUNTS:
                symbols = [f"C{i:03d}USDT" for i in range(count)]
                env = gateway_env(fake, url, data, pairs_of(symbols))
                start = partial(start_gateway, fake, env, symbols)
                arrived = partial(total_ticks, client, symbols)
                result = await firehose(fake, start, arrived, client, first_id, symbols, TICKS)
                first_id += TICKS
                case = f"{count} symbols"
                rows += [
                    {"case": case, "metric": "sustained ingest", "value": result["rate"],
                     "unit": "ticks/s", "reference": ceiling, "ratio": result["rate"] / ceiling},
                    {"case": case, "metric": "gateway CPU per tick",
                     "value": result["gateway_us"], "unit": "us"},
                    {"case": case, "metric": "Redis CPU per tick", "value": result["redis_us"],
                     "unit": "us"},
                ]  # fmt: skip
                phase = await paced(fake, env, client, first_id, STEADY_S, symbols, 10_000)
                first_id += 10_000 * PACED_SECONDS
                rows += phase.rows(f"{case}, 10,000 ticks/s")
            symbols = [f"C{i:03d}USDT" for i in range(50)]
            env = gateway_env(fake, url, data, pairs_of(symbols))
            for rate in RATES:
                phase = await paced(fake, env, client, first_id, STEADY_S, symbols, rate)
                first_id += rate * PACED_SECONDS
                rows += phase.rows(f"50 symbols, {rate:,} ticks/s")
    finally:
        client.close()
        server.stop()
    return rows


def run() -> list[dict[str, Any]]:
    return in_scratch_dir(_run)
