"""Should the gateway ``WAIT`` for a replica after each flush? Its cost, on a real 3 primaries +
3 replicas cluster of the bundled server (``spreadbus.testing.cluster``).

The gateway's write path (:class:`~spreadbus.bus.ticks.TickWriter`: one FCALL per symbol on a
cluster) writes 2 x :data:`FLUSHES` flushes of 26 symbols x :data:`TICKS_PER_SYMBOL` ticks (with
ghost twins), alternately as it does today and followed by ``WAIT 1 <timeout>`` on every primary
(a write is then acknowledged only once a replica has it, so a failover loses none of it). The
same-run ratio of the flush latencies is the cost; the loss it would prevent is measured by
``tests/bus/test_cluster_failover.py`` (gaps in the sim's trade ids after a primary is killed).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import numpy as np
from redis.asyncio.cluster import RedisCluster

from bench.bench_engine import SYMBOLS, Market
from bench.scratch import in_scratch_dir
from spreadbus.bus.ticks import TickWriter
from spreadbus.testing.cluster import running_cluster

FLUSHES: Final = 300
TICKS_PER_SYMBOL: Final = 4
WAIT_TIMEOUT_MS: Final = 100


async def _flushes(client: RedisCluster) -> tuple[list[float], list[float]]:
    """Flush latencies without and with WAIT, alternating flush by flush so that the machine's
    other work weighs on both alike."""
    writer = TickWriter(client)
    await writer.prepare(SYMBOLS)
    market = Market()
    primaries = client.get_primaries()
    start_ms = int(time.time() * 1000) - 3_600_000
    ready = [
        market.ticks(len(SYMBOLS) * TICKS_PER_SYMBOL, start_ms + i, float(start_ms + i))
        for i in range(2 * FLUSHES)
    ]
    plain: list[float] = []
    waited: list[float] = []
    for i, batches in enumerate(ready):
        began = time.perf_counter()
        await writer.write(batches)
        if i % 2:
            await client.execute_command("WAIT", 1, WAIT_TIMEOUT_MS, target_nodes=primaries)
        (waited if i % 2 else plain).append((time.perf_counter() - began) * 1000.0)
    return plain, waited


async def _run(root: Path) -> list[dict[str, Any]]:
    with running_cluster(root, 27_000, replicas=1) as (url, _):
        client = RedisCluster.from_url(url.replace("+cluster", ""))
        await client.initialize()
        plain, waited = await _flushes(client)
        await client.aclose()
    rows: list[dict[str, Any]] = []
    case = f"flush of {len(SYMBOLS)} symbols x {TICKS_PER_SYMBOL} ticks, 3+3 cluster"
    for q, name in ((50, "p50"), (99, "p99")):
        a, b = float(np.percentile(plain, q)), float(np.percentile(waited, q))
        rows.append({"case": case, "metric": f"flush {name} with WAIT 1", "value": b,
                     "unit": "ms", "reference": a, "ratio": b / a})  # fmt: skip
    return rows


def run() -> list[dict[str, Any]]:
    return in_scratch_dir(_run)


if __name__ == "__main__":
    for row in run():
        print(row)
