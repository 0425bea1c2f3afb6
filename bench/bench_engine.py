"""QuantEngine benchmark: end-to-end latency and keeping up, at 1,000, 10,000 and 50,000 ticks/s
over 25 pairs (26 symbols, a chain S01/S00, S02/S01, ...).

A real ``spreadbus engine`` process runs against an embedded Redis. This process plays the
gateway: every 2 ms it stamps ``recv`` with the wall clock (the moment a gateway would have
received the frames) and writes what is due with the gateway's own TickWriter (one FCALL for
every symbol; each real tick also gets a ghost twin, as the gateway's ghost venue does, so the
engine reads two entries per tick; as in the gateway, the ghosts go out with the next write at
most every ``IngestConfig.ghost_every_ms``). Before the engine starts, 330 s of history at 2
ticks/s per symbol fill the price series, so its 300-bar windows are warm and every scheduled
statistic (ADF, Hurst, Engle-Granger, refits) runs during the measurement, as in production.

Latency of a tick = the moment the engine's batch holding it was stored in Redis (pair
snapshots + cursor, one atomic write) minus its ``recv`` stamp; "of which gateway write" is
the producer's own part of it (recv stamp to its write acknowledged), measured in the same
run. The engine reports a mergeable
histogram of these on ``channel:logs`` every second; a phase's percentiles come from the sum
of its reports (5% bins), the maximum is exact. "Falling behind" = growth rate of the backlog
(entries written minus entries the engine has committed, from its cursor hash) over the
phase: about zero means it keeps up. Both processes share this machine (2 cores, with Redis).

``BENCH_ENGINE_PYSPY=<path to py-spy>`` (a profiler, not a dependency: ``pip install py-spy``
anywhere) samples the engine through each phase, idle time included, and adds where its main
thread's (the event loop's) wall-clock time went: the share of its samples inside each of the
engine's steps (the top of the stack is a ``select`` wait when it is idle); the collapsed
stacks of all threads go to ``bench/results/engine-<rate>.stacks``.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import redis.asyncio as aioredis

from bench.cpu import process_cpu_s as cpu_seconds  # bench_scaling imports this name
from bench.quiet import no_background_save
from bench.scratch import in_scratch_dir
from bench.wakeup import WakeupProbe
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.engine.consumer import load_cursor
from spreadbus.engine.diagnostics import merge, percentile
from spreadbus.gateway.ingest import IngestConfig
from spreadbus.proc import free_port, terminate

SYMBOLS = [f"S{i:02d}USDT" for i in range(26)]
PAIRS = [f"{SYMBOLS[i + 1]}/{SYMBOLS[i]}" for i in range(25)]
PHASES = [(1_000, 8.0), (10_000, 10.0), (50_000, 10.0)]  # (real ticks/s, seconds)
FLUSH_S = 0.002  # the gateway writes at most 2 ms after a frame arrives
HISTORY_S = 330
GHOST_EVERY_MS: Final = IngestConfig().ghost_every_ms
P99_TARGET_MS = 10.0
PYSPY = os.environ.get("BENCH_ENGINE_PYSPY", "")
RESULTS = Path(__file__).parent / "results"
# (label, text of a frame that means "in this step"): the innermost frame that matches any
# decides, so a statsmodels fit inside a pair update counts as the fit
STEPS: Final = (
    ("waiting (event loop idle: select)", "EpollSelector.select ("),
    ("statsmodels fits inside pair updates", "statsmodels/"),
    ("XREAD: reply parsing and reading", "spreadbus/engine/consumer.py"),
    ("decoding entries", "spreadbus/engine/entries.py"),
    ("snapshot write", "spreadbus/engine/writer.py"),
    ("snapshot write", "spreadbus/bus/connect.py"),
    ("pair updates (analytics)", "spreadbus/engine/pairstate.py"),
    ("applying ticks (core, symbols)", "spreadbus/engine/core.py"),
    ("applying ticks (core, symbols)", "spreadbus/engine/symbols.py"),
    ("feed and report", "_read_feed ("),
    ("feed and report", "_publish_report ("),
)


class Market:
    """Cointegrated prices: one common random walk, per-symbol level and mean-reverting noise."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.levels = np.array([50.0 + 37.0 * i for i in range(len(SYMBOLS))])
        self.common = 0.0
        self.noise = np.zeros(len(SYMBOLS))
        self.next_id = [1] * len(SYMBOLS)
        self.turn = 0

    def ticks(self, count: int, now_ms: int, recv_ms: float) -> dict[str, SymbolBatch]:
        """``count`` trades at ``now_ms``, round-robin over the symbols, each with a ghost."""
        self.common += 2e-5 * self.rng.standard_normal()
        self.noise = 0.98 * self.noise + 2e-5 * self.rng.standard_normal(len(SYMBOLS))
        jitter = 1e-5 * self.rng.standard_normal(count)
        batches: dict[str, SymbolBatch] = {}
        for k in range(count):
            i = (self.turn + k) % len(SYMBOLS)
            symbol = SYMBOLS[i]
            price = self.levels[i] * math.exp(self.common) * (1.0 + self.noise[i] + jitter[k])
            trade_id = self.next_id[i]
            self.next_id[i] += 1
            text = f"{price:.4f}"
            real = Tick(symbol, trade_id, text, "1.5", "buy", now_ms, now_ms, recv_ms, "sim")
            ghost = Tick(symbol, trade_id, f"{price * 1.0001:.4f}", "1.5", "buy", now_ms,
                         now_ms, recv_ms, "ghost")  # fmt: skip
            batch = batches.setdefault(symbol, SymbolBatch([], []))
            batch.ticks.append(real)
            batch.ghosts.append(ghost)
        self.turn = (self.turn + count) % len(SYMBOLS)
        return batches


def engine_env(
    redis_url: str, data_dir: Path, pairs: list[str], heartbeat_s: float
) -> dict[str, str]:
    """The environment of a benchmarked ``spreadbus engine``: none of this shell's own
    ``SPREADBUS_`` settings, the bench's Redis, data folder and pairs, errors on the console."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPREADBUS_")},
        "SPREADBUS_REDIS_URL": redis_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_PAIRS": ",".join(pairs),
        "SPREADBUS_HEARTBEAT_INTERVAL": str(heartbeat_s),
        "SPREADBUS_LOG_LEVEL": "INFO",
        "SPREADBUS_CONSOLE_LEVEL": "ERROR",
    }


async def write_history(writer: TickWriter, market: Market, start_ms: int) -> int:
    """``HISTORY_S`` seconds before ``start_ms`` at 2 ticks/s per symbol (real only)."""
    written = 0
    for second in range(HISTORY_S, 0, -1):
        for half in (0, 500):
            ms = start_ms - second * 1000 + half
            batches = market.ticks(len(SYMBOLS), ms, float(ms))
            for batch in batches.values():
                batch.ghosts.clear()
            written += (await writer.write(batches)).added
    return written


async def wait_until_started(
    engine: subprocess.Popen[bytes], started: Callable[[], Awaitable[bool]], timeout_s: float
) -> None:
    """Poll ``started`` every 0.1 s until it is true; RuntimeError if the engine exits first
    or ``timeout_s`` passes."""
    for _ in range(int(timeout_s / 0.1)):
        if await started():
            return
        if engine.poll() is not None:
            raise RuntimeError("the engine exited")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the engine did not start within {timeout_s:.0f} s")


async def committed(client: aioredis.Redis) -> int:
    """Entries the engine has committed (its cursor's counts, real + ghost)."""
    return sum(p.processed + p.bad for p in (await load_cursor(client)).values())


async def produce(
    writer: TickWriter,
    market: Market,
    rate: int,
    seconds: float,
    written: list[int],
    write_ms: list[float],
) -> float:
    """Write ``rate`` real ticks/s (plus ghosts) for ``seconds``; returns the achieved rate.
    ``write_ms`` gets each write's own latency (recv stamp to write acknowledged)."""
    started = time.monotonic()
    sent = 0
    most = max(1, rate // 50)  # a producer that falls behind writes 20 ms at a time, no more
    ghosts: dict[str, list[Tick]] = {}  # held for the ghost venue's next beat
    ghosts_at = 0.0
    while (elapsed := time.monotonic() - started) < seconds:
        due = min(int(rate * elapsed) - sent, most)
        if due > 0:
            recv = epoch_ms()
            batches = market.ticks(due, int(recv), recv)
            for symbol, batch in batches.items():
                ghosts.setdefault(symbol, []).extend(batch.ghosts)
                batch.ghosts = []
            if recv - ghosts_at >= GHOST_EVERY_MS:
                ghosts_at = recv
                for symbol, held in ghosts.items():
                    batches.setdefault(symbol, SymbolBatch([], [])).ghosts = held
                ghosts = {}
            result = await writer.write(batches)
            write_ms.append(epoch_ms() - recv)
            sent += due
            written[0] += result.added + result.ghosts
        await asyncio.sleep(FLUSH_S)
    return sent / (time.monotonic() - started)


async def _run(tmp: Path) -> list[dict[str, Any]]:
    server = EmbeddedRedis(tmp / "redis", port=free_port())
    server.start()
    engine: subprocess.Popen[bytes] | None = None
    try:
        client = aioredis.Redis.from_url(server.url)
        writer = TickWriter(client)
        await writer.prepare(SYMBOLS)
        market = Market()
        start_ms = int(epoch_ms())
        await write_history(writer, market, start_ms)
        env = engine_env(server.url, tmp / "data", PAIRS, heartbeat_s=1.0)
        pubsub = client.pubsub()
        await pubsub.subscribe(keys.CHANNEL_LOGS)
        engine = subprocess.Popen([sys.executable, "-m", "spreadbus", "engine"], env=env)
        reports: list[tuple[float, dict[str, Any]]] = []
        listener = asyncio.create_task(_listen(pubsub, reports))

        async def ready() -> bool:
            return any(r.get("event") == "ready" for _, r in reports)

        await wait_until_started(engine, ready, 60.0)
        written = [0]
        rows: list[dict[str, Any]] = []
        assert server.process is not None
        pids = {"engine": engine.pid, "redis": server.process.pid, "producer": os.getpid()}
        for rate, seconds in PHASES:
            await no_background_save(lambda: client.info("persistence"))
            began = time.monotonic()
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            backlog0 = written[0] - await committed(client)
            write_ms: list[float] = []
            profiler = _profile(engine.pid, rate, seconds) if PYSPY else None
            with WakeupProbe(seconds) as probe:
                achieved = await produce(writer, market, rate, seconds, written, write_ms)
            if profiler is not None:
                rows += await _profile_rows(profiler, rate)
            backlog1 = written[0] - await committed(client)
            ended = time.monotonic()
            cpu = {n: (cpu_seconds(p) - cpu0[n]) / (ended - began) for n, p in pids.items()}
            await asyncio.sleep(1.2)  # the report covering the phase's last second
            rows += _phase_rows(rate, achieved, reports, began, ended, backlog0, backlog1, cpu)
            rows += _gateway_rows(rate, write_ms)
            rows += probe.rows(f"{rate // 1000}k ticks/s, 25 pairs")
            for _ in range(200):  # the next phase starts from no backlog (20 s at most)
                if written[0] <= await committed(client):
                    break
                await asyncio.sleep(0.1)
        listener.cancel()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        return rows
    finally:
        if engine is not None:
            terminate(engine, 15)
        server.stop()


def _profile(pid: int, rate: int, seconds: float) -> subprocess.Popen[bytes]:
    RESULTS.mkdir(exist_ok=True)
    return subprocess.Popen(
        [PYSPY, "record", "--pid", str(pid), "--idle", "--format", "raw", "--rate", "250",
         "--duration", str(max(1, int(seconds))), "--nonblocking",
         "--output", str(RESULTS / f"engine-{rate}.stacks")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _profile_rows(profiler: subprocess.Popen[bytes], rate: int) -> list[dict[str, Any]]:
    """Share of the engine's main-thread samples in each step (:data:`STEPS`)."""
    await asyncio.to_thread(profiler.wait, 60)
    shares: dict[str, int] = {}
    total = 0
    path = RESULTS / f"engine-{rate}.stacks"
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")[::-1]  # innermost first
        if "_run_module_as_main" not in frames[-1]:
            continue  # a worker thread (idle pool threads would swamp the shares)
        label = next(
            (name for frame in frames for name, needle in STEPS if needle in frame), "other"
        )
        shares[label] = shares.get(label, 0) + int(count)
        total += int(count)
    case = f"{rate // 1000}k ticks/s, 25 pairs"
    return [
        {"case": case, "metric": f"engine time: {label}", "value": 100.0 * n / total,
         "unit": "% of samples"}
        for label, n in sorted(shares.items(), key=lambda item: -item[1])
    ] if total else [{"case": case, "metric": "engine profile", "value": math.nan,
                      "unit": "py-spy wrote nothing"}]  # fmt: skip


async def _listen(pubsub: Any, reports: list[tuple[float, dict[str, Any]]]) -> None:
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is None:
            continue
        event = orjson.loads(message["data"])
        if event.get("service") == "engine":
            reports.append((time.monotonic(), {"event": event["event"], **event["fields"]}))


def _phase_rows(
    rate: int,
    achieved: float,
    reports: list[tuple[float, dict[str, Any]]],
    began: float,
    ended: float,
    backlog0: int,
    backlog1: int,
    cpu: dict[str, float],
) -> list[dict[str, Any]]:
    # skip the first report of the phase (it straddles the change of rate)
    stats = [
        r for t, r in reports if began + 1.0 < t <= ended + 1.1 and r["event"] == "engine stats"
    ]
    hist = merge(r.get("latency_hist", {}) for r in stats)
    worst = max((r.get("latency_ms_max", 0.0) for r in stats), default=math.nan)
    lag = max((r.get("lag_ms", 0) for r in stats), default=0)
    behind = (backlog1 - backlog0) / (ended - began)
    case = f"{rate // 1000}k ticks/s, 25 pairs"
    p99 = percentile(hist, 0.99)
    return [
        {"case": case, "metric": "achieved rate", "value": achieved, "unit": "ticks/s",
         "reference": float(rate), "ratio": achieved / rate},
        {"case": case, "metric": "latency p50", "value": percentile(hist, 0.50), "unit": "ms"},
        {"case": case, "metric": "latency p99", "value": p99, "unit": "ms",
         "reference": P99_TARGET_MS, "ratio": p99 / P99_TARGET_MS},
        {"case": case, "metric": "latency max", "value": worst, "unit": "ms"},
        {"case": case, "metric": "falling behind", "value": behind, "unit": "entries/s",
         "reference": 2.0 * achieved, "ratio": behind / (2.0 * achieved)},
        {"case": case, "metric": "lag behind head (max)", "value": float(lag), "unit": "ms"},
        *({"case": case, "metric": f"{name} CPU", "value": 100.0 * share, "unit": "% of a core"}
          for name, share in cpu.items()),
    ]  # fmt: skip


def _gateway_rows(rate: int, write_ms: list[float]) -> list[dict[str, Any]]:
    """The producer's own share: from the recv stamp until its write is acknowledged (the
    ticks exist in Redis only from then on). Part of the end-to-end latency above."""
    case = f"{rate // 1000}k ticks/s, 25 pairs"
    p50, p99 = np.percentile(write_ms, [50, 99]) if write_ms else (math.nan, math.nan)
    return [
        {"case": case, "metric": "of which gateway write p50", "value": float(p50), "unit": "ms"},
        {"case": case, "metric": "of which gateway write p99", "value": float(p99), "unit": "ms"},
    ]


def run() -> list[dict[str, Any]]:
    return in_scratch_dir(_run)


if __name__ == "__main__":
    for row in run():
        print(row)
