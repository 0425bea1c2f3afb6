"""The gateway's core alone, CPU per tick: aggTrade frames for 50 symbols go straight into
``Ingest`` (parse, dedupe, ghost venue, batching) and are flushed to Redis with the gateway's
writer (both streams, price series, candle sources), in one process with no WebSocket in front
(:mod:`bench.gateway_core`). What it measures is our own per-tick cost, on the process and on
Redis's main thread, which moves much less with the machine's load than wall-clock rates.

``BENCH_GATEWAY_BASELINE=<label>=<src path>[,...]`` (as for ``bench gateway``) runs those trees'
core the same way, alternating with ours, ``BENCH_GATEWAY_ROUNDS`` times (medians), and adds
ours/their ratios. The ghost venue's publication delay makes most ghosts due after the last
flush: the final drain writes them, inside the measurement.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import redis

from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.proc import free_port

TICKS = int(os.environ.get("BENCH_GATEWAY_CORE_TICKS", "30000"))
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "3"))
BASELINES = dict(
    item.split("=", 1) for item in os.environ.get("BENCH_GATEWAY_BASELINE", "").split(",") if item
)
REPO = Path(__file__).resolve().parents[1]


def _one(url: str, src: str | None, first_id: int) -> dict[str, float]:
    path = os.pathsep.join(p for p in (src, str(REPO)) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench.gateway_core", url, str(TICKS), str(first_id)],
        env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"gateway core run failed: {done.stderr[-1500:]}")
    result: dict[str, float] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def run() -> list[dict[str, Any]]:
    trees: dict[str, str | None] = {"ours": os.environ.get("PYTHONPATH") or None, **BASELINES}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="spreadbus-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp), port=free_port())
        url = server.start()
        client = redis.Redis.from_url(url)
        try:
            first_id = 1
            for _ in range(ROUNDS):
                for name, src in trees.items():
                    client.flushall()
                    runs[name].append(_one(url, src, first_id))
                    first_id += TICKS
        finally:
            client.close()
            server.stop()
    rows: list[dict[str, Any]] = []
    median = {
        name: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for name, results in runs.items()
    }
    flush = os.environ.get("BENCH_GATEWAY_CORE_FLUSH", "400")
    case = f"50 symbols, {TICKS:,} frames, {flush} a flush, no network"
    for metric, key, unit in (
        ("process CPU per tick", "process_us", "us"),
        ("Redis CPU per tick", "redis_us", "us"),
        ("longest collector pause", "gc_max_ms", "ms"),
        ("collector time, whole run", "gc_total_ms", "ms"),
    ):
        rows.append({"case": case, "metric": metric, "value": median["ours"][key], "unit": unit})
        for label in BASELINES:
            rows.append({"case": f"{case}, ours / {label}", "metric": metric,
                         "value": median["ours"][key], "unit": unit,
                         "reference": median[label][key],
                         "ratio": median["ours"][key] / median[label][key]
                         if median[label][key] else math.nan})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
