"""Gateway ingest benchmark: the local Binance-protocol server firehoses aggTrade frames for 50
symbols into a real ``spreadbus gateway`` process; we time the full path (parse, ghost, both
streams, TimeSeries) until every tick is in Redis, and the CPU it cost per tick: the gateway
process's (user + system, from /proc) and Redis's main thread's (``INFO cpu``). The ceiling,
measured in the same run on the same Redis: ``redis-benchmark`` pipelined XADD of an entry of
the same shape (:mod:`spreadbus.bus.tickschema`'s one field).

CPU per tick is the figure to compare on a shared machine: wall-clock throughput moves with
whatever else runs, CPU time much less. ``BENCH_GATEWAY_BASELINE=<label>=<path to another
checkout's src>[,<label>=<path>...]`` also runs those trees' gateways on the same frames and
Redis, alternating with ours (``BENCH_GATEWAY_ROUNDS`` times each), and reports ours against
each of them.

Also: the p99 batch-flush delay at a paced 10,000 ticks/s, from a tick's receipt until Redis has
acknowledged the write of its batch (the gateway samples the oldest tick of every batch), once
with frames sent every millisecond and once in bursts of 100 frames every 10 ms. Each is read
against two references from the same run: the OS wake-up probe's p99, and the floor
(:mod:`bench.floor`): the same feed through a forwarder that only forwards raw frames to Redis.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import redis

from bench import cryptofeed_ref
from bench.cpu import process_cpu_s, redis_cpu_s
from bench.quiet import no_background_save
from bench.scratch import in_scratch_dir
from bench.wakeup import WakeupProbe
from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.bus.embedded import EmbeddedRedis, binary, server_env
from spreadbus.gateway.binance import stream_name
from spreadbus.proc import free_port, terminate
from spreadbus.testing.binance_server import BinanceServer, build_agg_trade_frames

SYMBOLS = [f"B{i:02d}USDT" for i in range(50)]


def pairs_of(symbols: list[str]) -> str:
    """Neighbouring symbols paired off: the pairs setting that subscribes all of them."""
    return ",".join(f"{symbols[i]}/{symbols[i + 1]}" for i in range(0, len(symbols) - 1, 2))


PAIRS = pairs_of(SYMBOLS)
FIREHOSE_TICKS = int(os.environ.get("BENCH_GATEWAY_TICKS", "200000"))
PACED_RATE = 10_000
PACED_SECONDS = 6
CRYPTOFEED = os.environ.get("BENCH_CRYPTOFEED", "1") != "0"
BASELINES = dict(
    item.split("=", 1) for item in os.environ.get("BENCH_GATEWAY_BASELINE", "").split(",") if item
)
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "2"))


def redis_benchmark_xadd(server: EmbeddedRedis, password: str, requests: int = 200_000) -> float:
    """Pipelined (-P 64) XADD of an entry shaped as the gateway's: what Redis alone can take,
    requests/s."""
    tick = Tick("B00USDT", 1, "98231.40", "0.012", "buy", 1795314919485, 1795314919490,
                1795314919491.123, "binance")  # fmt: skip
    fields = [item for pair in tickschema.to_fields(tick).items() for item in pair]
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
    leaves ~100 MB of AOF behind, and a rewrite running through the phase would be measured as
    gateway latency."""
    client.flushall()
    await no_background_save(lambda: client.info("persistence"))


Starter = Callable[[], Awaitable["subprocess.Popen[bytes]"]]


async def firehose(
    fake: BinanceServer,
    start: Starter,
    arrived: Callable[[], int],
    client: redis.Redis,
    first_id: int,
    symbols: list[str] = SYMBOLS,
    ticks: int = FIREHOSE_TICKS,
) -> dict[str, float]:
    """A fresh consumer process (``start``: ours, a baseline's or cryptofeed), on an emptied
    Redis, takes ``ticks`` frames over ``symbols`` as fast as it can, until ``arrived()``
    counts them all in Redis: ticks/s, and its, Redis's and the local server's (this
    process's) CPU microseconds per tick."""
    await _quiet_redis(client)
    process = await start()
    try:
        await asyncio.sleep(1.0)  # start-up (imports, series creation) is not per-tick cost
        frames = build_agg_trade_frames(symbols, ticks, first_agg_id=first_id)
        process_cpu, server_cpu = process_cpu_s(process.pid), redis_cpu_s(client)
        sender_cpu = time.process_time()
        started = time.perf_counter()
        sent = await fake.firehose(frames)
        if sent.frames < ticks:
            raise RuntimeError(f"the server sent {sent.frames} frames on {sent.connections} conns")
        while (count := arrived()) < ticks:
            if time.perf_counter() - started > 180 or process.poll() is not None:
                raise RuntimeError(
                    f"only {count} of {ticks} arrived (exit code {process.poll()}); "
                    f"gateway counters: {gateway_counters(client)}"
                )
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        sender_cpu = time.process_time() - sender_cpu
        process_cpu = process_cpu_s(process.pid) - process_cpu
        server_cpu = redis_cpu_s(client) - server_cpu
    finally:
        terminate(process, 10)
    return {
        "rate": ticks / elapsed,
        "gateway_us": process_cpu / ticks * 1e6,
        "redis_us": server_cpu / ticks * 1e6,
        "sender_us": sender_cpu / ticks * 1e6,
    }


def firehose_rows(case: str, runs: list[dict[str, float]], ceiling: float) -> list[dict[str, Any]]:
    """Medians of the runs of one code tree."""
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return [
        {"case": case, "metric": "sustained ingest", "value": median["rate"], "unit": "ticks/s",
         "reference": ceiling, "ratio": median["rate"] / ceiling},
        {"case": case, "metric": "consumer process CPU per tick", "value": median["gateway_us"],
         "unit": "us"},
        {"case": case, "metric": "Redis CPU per tick", "value": median["redis_us"], "unit": "us"},
        # the local server's sending (this process): the third user of the two cores
        {"case": case, "metric": "local server CPU per tick", "value": median["sender_us"],
         "unit": "us"},
    ]  # fmt: skip


def cryptofeed_ticks(client: redis.Redis) -> int:
    with client.pipeline(transaction=False) as pipe:
        for symbol in SYMBOLS:
            pipe.xlen(cryptofeed_ref.stream_key(symbol))
        return sum(pipe.execute())


async def _start_cryptofeed(
    fake: BinanceServer, interpreter: Path, port: int, password: str
) -> subprocess.Popen[bytes]:
    """cryptofeed (:mod:`bench.cryptofeed_ref`), once it has subscribed to every symbol."""
    await fake.wait_until(lambda: not fake.connections, 30, "the last consumer's connections")
    process = cryptofeed_ref.start(interpreter, fake.ws_url, fake.rest_url, port, password,
                                   SYMBOLS)  # fmt: skip
    try:
        for symbol in SYMBOLS:
            await fake.wait_for_subscribers(stream_name(symbol), timeout=60)
    except TimeoutError:
        terminate(process, 5)
        raise RuntimeError(await cryptofeed_ref.stopped_with(process)) from None
    return process


async def start_gateway(
    fake: BinanceServer, env: dict[str, str], symbols: list[str] = SYMBOLS
) -> subprocess.Popen[bytes]:
    """A ``spreadbus gateway`` process, once it has subscribed to every symbol (and the server
    has seen the previous gateway's connections close: else their subscriptions would count)."""
    await fake.wait_until(lambda: not fake.connections, 30, "the last gateway's connections")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "gateway"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for symbol in symbols:
        await fake.wait_for_subscribers(stream_name(symbol), timeout=30)
    return gateway


async def _send_paced(
    fake: BinanceServer, frames: list[bytes], slice_s: float, rate: int = PACED_RATE
) -> None:
    """``frames`` at ``rate`` per second: every ``slice_s`` seconds, the frames due by then."""
    begin = time.perf_counter()
    sent = 0
    while sent < len(frames):
        due = min(len(frames), int((time.perf_counter() - begin) * rate) + 1)
        if due > sent:
            await fake.firehose(frames[sent:due])
            sent = due
        await asyncio.sleep(max(0.0, begin + (sent / rate) + slice_s - time.perf_counter()))


def total_ticks(client: redis.Redis, symbols: list[str] = SYMBOLS) -> int:
    with client.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.xlen(keys.tick_stream(symbol))
        return sum(pipe.execute())


def gateway_counters(client: redis.Redis) -> dict[str, Any]:
    raw = client.hget(keys.health("gateway"), "counters")
    return orjson.loads(raw) if raw else {}


@dataclass(frozen=True)
class Paced:
    """One paced phase: the gateway's batch flush delay, its CPU and the wake-up probe's."""

    p50_ms: float
    p99_ms: float
    gateway_cpu_pct: float  # of one core, over the phase
    probe: WakeupProbe

    def rows(self, case: str) -> list[dict[str, Any]]:
        probe_p99 = float(self.probe.result.get("p99", math.nan))
        return [
            {"case": case, "metric": "batch flush delay p50", "value": self.p50_ms,
             "unit": "ms"},
            {"case": case, "metric": "batch flush delay p99", "value": self.p99_ms,
             "unit": "ms", "reference": probe_p99, "ratio": self.p99_ms / probe_p99},
            {"case": case, "metric": "gateway CPU", "value": self.gateway_cpu_pct,
             "unit": "% of a core"},
            *self.probe.rows(case),
        ]  # fmt: skip


async def paced(
    fake: BinanceServer,
    env: dict[str, str],
    client: redis.Redis,
    first_id: int,
    slice_s: float,
    symbols: list[str] = SYMBOLS,
    rate: int = PACED_RATE,
) -> Paced:
    """A fresh gateway on an emptied Redis takes ``rate`` ticks/s over ``symbols`` for
    :data:`PACED_SECONDS`, sent every ``slice_s``; the p99 reference is the wake-up probe's
    p99 over the same seconds (the issue's target: within 3x of it)."""
    await _quiet_redis(client)
    gateway = await start_gateway(fake, env, symbols)
    try:
        await asyncio.sleep(1.0)  # start-up (imports, series creation) is not the phase's
        frames = build_agg_trade_frames(
            symbols, rate * PACED_SECONDS, first_agg_id=first_id,
            start_time_ms=int(time.time() * 1000),
        )  # fmt: skip
        cpu_s, began = process_cpu_s(gateway.pid), time.perf_counter()
        with WakeupProbe(PACED_SECONDS) as probe:
            await _send_paced(fake, frames, slice_s, rate)
        cpu_pct = (process_cpu_s(gateway.pid) - cpu_s) / (time.perf_counter() - began) * 100
        await asyncio.sleep(1.5)  # one more heartbeat with the final percentiles
        counters = gateway_counters(client)
    finally:
        terminate(gateway, 10)
    return Paced(
        float(counters.get("batch_latency_p50_ms", "nan")),
        float(counters.get("batch_latency_p99_ms", "nan")),
        cpu_pct,
        probe,
    )


async def paced_floor(
    fake: BinanceServer,
    url: str,
    client: redis.Redis,
    first_id: int,
    slice_s: float,
    symbols: list[str] = SYMBOLS,
    rate: int = PACED_RATE,
) -> tuple[float, float, WakeupProbe]:
    """The same paced phase through :mod:`bench.floor` (a forwarder that only forwards) instead
    of the gateway: its delay p50 and p99, and the wake-up probe over its seconds."""
    await _quiet_redis(client)
    await fake.wait_until(lambda: not fake.connections, 30, "the last consumer's connections")
    streams = "/".join(stream_name(symbol) for symbol in symbols)
    floor = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", url, f"{fake.ws_url}/market/stream?streams={streams}",
         str(PACED_SECONDS + 3.0)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        for symbol in symbols:
            await fake.wait_for_subscribers(stream_name(symbol), timeout=30)
        await asyncio.sleep(1.0)  # as for the gateway: start-up is not the phase's
        frames = build_agg_trade_frames(
            symbols, rate * PACED_SECONDS, first_agg_id=first_id,
            start_time_ms=int(time.time() * 1000),
        )  # fmt: skip
        with WakeupProbe(PACED_SECONDS) as probe:
            await _send_paced(fake, frames, slice_s, rate)
        out, _ = await asyncio.to_thread(floor.communicate, timeout=30)
    finally:
        terminate(floor, 5)
    result = orjson.loads(out) if out.strip() else {}
    return float(result.get("p99", math.nan)), float(result.get("p50", math.nan)), probe


def floor_rows(case: str, ours: Paced, floor: tuple[float, float, WakeupProbe]) -> list[Any]:
    """The floor's delay against its own probe, and ours against the floor."""
    p99, p50, probe = floor
    probe_p99 = float(probe.result.get("p99", math.nan))
    return [
        {"case": case, "metric": "floor (raw forwarder) delay p50", "value": p50, "unit": "ms"},
        {"case": case, "metric": "floor (raw forwarder) delay p99", "value": p99, "unit": "ms",
         "reference": probe_p99, "ratio": p99 / probe_p99},
        {"case": case, "metric": "batch flush delay p99, ours / floor", "value": ours.p99_ms,
         "unit": "ms", "reference": p99, "ratio": ours.p99_ms / p99},
    ]  # fmt: skip


def gateway_env(fake: BinanceServer, url: str, data: Path, pairs: str = PAIRS) -> dict[str, str]:
    """The environment of a benchmarked ``spreadbus gateway`` on the local server."""
    return {
        **os.environ,
        "SPREADBUS_REDIS_URL": url,
        "SPREADBUS_DATA_DIR": str(data),
        "SPREADBUS_SOURCE": "binance",
        "SPREADBUS_BINANCE_WS_URL": fake.ws_url,
        "SPREADBUS_BINANCE_REST_URL": fake.rest_url,
        "SPREADBUS_PAIRS": pairs,
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        "SPREADBUS_LOG_LEVEL": "WARNING",
    }


async def _run(data: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    server = EmbeddedRedis(data, port=free_port())
    url = server.start()
    password = (data / "redis" / "password").read_text().strip()
    client = redis.Redis.from_url(url)
    try:
        ceiling = redis_benchmark_xadd(server, password)
        client.delete("bench:xadd")
        async with BinanceServer(ping_interval=None, max_streams=1024) as fake:
            env = gateway_env(fake, url, data)
            # 1. Sustained ingest: as fast as the gateway takes (and, if asked, the baseline
            #    tree's gateway on the same frames, alternating).
            trees = {"ours": env}
            trees.update({label: {**env, "PYTHONPATH": path} for label, path in BASELINES.items()})
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            first_id = 1
            starters: dict[str, tuple[Starter, Callable[[], int]]] = {
                name: (partial(start_gateway, fake, tree_env), partial(total_ticks, client))
                for name, tree_env in trees.items()
            }
            reference = cryptofeed_ref.python() if CRYPTOFEED else "not asked (BENCH_CRYPTOFEED=0)"
            if isinstance(reference, Path):
                fake.listed_symbols = SYMBOLS
                starters["cryptofeed"] = (
                    partial(_start_cryptofeed, fake, reference, server.port, password),
                    partial(cryptofeed_ticks, client),
                )
                runs["cryptofeed"] = []
            for _ in range(ROUNDS if len(starters) > 1 else 1):
                for name, (start, arrived) in starters.items():
                    try:
                        runs[name].append(await firehose(fake, start, arrived, client, first_id))
                    except RuntimeError as exc:
                        if name != "cryptofeed":
                            raise
                        reference = f"cryptofeed did not take the firehose: {exc}"
                        del starters[name], runs[name]
                        break
                    first_id += FIREHOSE_TICKS
            ours = firehose_rows("50 symbols, firehose", runs["ours"], ceiling)
            rows += ours
            if not isinstance(reference, Path):
                rows.append({"case": "50 symbols, firehose, cryptofeed", "metric": "not run",
                             "value": math.nan, "unit": str(reference)[:300]})  # fmt: skip
            for label in [*BASELINES, *(["cryptofeed"] if "cryptofeed" in runs else [])]:
                theirs = firehose_rows(f"50 symbols, firehose, {label}", runs[label], ceiling)
                rows += theirs
                for mine, other in zip(ours, theirs, strict=True):
                    rows.append({"case": f"50 symbols, firehose, ours / {label}",
                                 "metric": mine["metric"], "value": mine["value"],
                                 "unit": mine["unit"], "reference": other["value"],
                                 "ratio": mine["value"] / other["value"]})  # fmt: skip
            rate = statistics.median(r["rate"] for r in runs["ours"])
            rows.append({"case": "50 symbols, firehose", "metric": "target 100,000 ticks/s",
                         "value": rate / 100_000, "unit": "x target"})  # fmt: skip

            # 2. Flush delay at a paced 10,000 ticks/s, steady and in bursts (a fresh process
            #    for each, so each has its own percentiles).
            for label, slice_s in (("steady, sent every 1 ms", 0.001),
                                   ("bursts of 100 every 10 ms", 0.01)):  # fmt: skip
                case = f"{PACED_RATE:,} ticks/s, {label}"
                ours = await paced(fake, env, client, first_id, slice_s)
                first_id += PACED_RATE * PACED_SECONDS
                floor = await paced_floor(fake, url, client, first_id, slice_s)
                first_id += PACED_RATE * PACED_SECONDS
                rows += ours.rows(case) + floor_rows(case, ours, floor)
    finally:
        client.close()
        server.stop()
    return rows


def run() -> list[dict[str, Any]]:
    return in_scratch_dir(_run)


if __name__ == "__main__":
    for row in run():
        print(row)
