"""Redis's own work per tick, counted in instructions: the Lua publishing call against plain
XADDs of the same ticks, in the same run.

Wall-clock and CPU times of Redis move by ±20% from run to run on a shared VM (steal time);
an instruction count does not. Redis runs under valgrind's callgrind, which counts only inside
``processCommand`` (a command's lookup, checks and execution, the Lua library included; not the
reading and parsing of its bytes), so the figures are Redis's own work, the same in every run.

Two flush shapes, each written by the gateway's writer (``TickWriter``, one FCALL a flush, real
ticks and their ghosts, exact candles):
* 10k ticks/s: 44 ticks over 44 symbols a flush, a ghost each (what a paced 10k/s feed flushes
  every 2-5 ms: one or two ticks a symbol, so the cost a symbol dominates);
* firehose: 400 ticks over 50 symbols a flush, a ghost each.
The reference: the same ticks as plain pipelined XADDs, one to the real stream (its id) and one
to the ghost stream, with the same one-field entries: what writing the two streams alone costs,
without the series, candles, checks and idempotency the Lua call adds.

Needs valgrind (``apt-get install valgrind``); without it the benchmark says so and is skipped.
``BENCH_LUACOST_LUA=<file>`` measures another version of the library (same arguments).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.scratch import in_scratch_dir
from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.bus.embedded import binary, server_env, server_home
from spreadbus.bus.ticks import SymbolBatch, TickWriter, ensure_symbol_series, load_function
from spreadbus.proc import free_port

SHAPES = (
    ("10k ticks/s: 44 ticks over 44 symbols a flush", 44, 44),
    ("firehose: 400 ticks over 50 symbols a flush", 400, 50),
)
FLUSHES = 60
LUA = os.environ.get("BENCH_LUACOST_LUA", "")
LIBRARY = Path(LUA).read_text() if LUA else ""  # read here: not a blocking read in the loop


def run() -> list[dict[str, Any]]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("  bench luacost skipped: valgrind is not installed (apt-get install valgrind)")
        return []
    rows: list[dict[str, Any]] = []
    for case, ticks, symbols in SHAPES:
        ours = in_scratch_dir(partial(_count, ticks=ticks, symbols=symbols, lua=True))
        plain = in_scratch_dir(partial(_count, ticks=ticks, symbols=symbols, lua=False))
        per_tick, reference = ours / (FLUSHES * ticks), plain / (FLUSHES * ticks)
        rows += [
            {"case": case, "metric": "Redis instructions per tick, FCALL publish_ticks",
             "value": per_tick, "unit": "instructions", "reference": reference,
             "ratio": per_tick / reference},
            {"case": case, "metric": "Redis instructions per tick, plain XADDs (reference)",
             "value": reference, "unit": "instructions"},
        ]  # fmt: skip
    return rows


async def _count(folder: Path, ticks: int, symbols: int, *, lua: bool) -> float:
    """Instructions Redis spent inside ``processCommand`` over the measured flushes (the
    counters are zeroed after the setup's commands)."""
    port = free_port()
    config = folder / "redis.conf"
    module = server_home() / "lib" / "redistimeseries.so"
    config.write_text(
        f'bind 127.0.0.1\nport {port}\nsave ""\nappendonly no\ndir "{folder}"\n'
        f'loadmodule "{module}"\n'
    )
    out = folder / "callgrind.out"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--collect-atstart=no",
         "--toggle-collect=processCommand", f"--callgrind-out-file={out}",
         str(binary("redis-server")), str(config)],
        env=server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = aioredis.Redis(port=port)
    try:
        await _wait_ready(client)
        names = [f"L{i:03d}USDT" for i in range(symbols)]
        writer = TickWriter(client)
        if LIBRARY:
            await client.execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY)  # type: ignore[no-untyped-call]
        else:
            await load_function(client)
        for name in names:
            await ensure_symbol_series(client, name)
            writer.prepared.add(name)
        flushes = [_flush(names, ticks, k) for k in range(FLUSHES + 1)]
        await _write(client, writer, flushes[0], lua=lua)  # streams exist, as in a running gateway
        subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True,
                       capture_output=True)  # fmt: skip
        for batches in flushes[1:]:
            await _write(client, writer, batches, lua=lua)
    finally:
        await client.aclose()
        server.terminate()
        server.wait(60)
    return _total(out)


async def _wait_ready(client: aioredis.Redis) -> None:
    for _ in range(600):
        try:
            await client.ping()
            return
        except (OSError, aioredis.ConnectionError):
            await asyncio.sleep(0.1)
    raise RuntimeError("redis-server under valgrind did not answer within 60 s")


def _flush(symbols: list[str], ticks: int, k: int) -> dict[str, SymbolBatch]:
    """The k-th flush: ``ticks`` trades round-robin over ``symbols`` (one millisecond apart,
    prices moving), each with its ghost."""
    start_ms = 1_795_314_900_000 + k * ticks
    batches: dict[str, SymbolBatch] = {}
    for j in range(ticks):
        symbol, n = symbols[j % len(symbols)], k * ticks + j
        real = Tick(symbol, n + 1, f"{98_000 + n % 97}.{n % 10}0", "0.012", "buy",
                    start_ms + j, start_ms + j + 2, start_ms + j + 2.5, "binance")  # fmt: skip
        batch = batches.setdefault(symbol, SymbolBatch([], []))
        batch.ticks.append(real)
        batch.ghosts.append(real._replace(price="98001.10", source="ghost"))
    return batches


async def _write(
    client: aioredis.Redis, writer: TickWriter, batches: dict[str, SymbolBatch], *, lua: bool
) -> None:
    if lua:
        result = await writer.write(batches)
        if result.added != sum(len(b.ticks) for b in batches.values()) or result.refused_samples:
            raise RuntimeError(f"the flush did not go in whole: {result}")
        return
    async with client.pipeline(transaction=False) as pipe:
        for symbol, batch in batches.items():
            for tick in batch.ticks:
                real: dict[Any, Any] = tickschema.to_fields(tick)
                pipe.xadd(keys.tick_stream(symbol), real, id=tick.stream_id)
            for ghost in batch.ghosts:
                twin: dict[Any, Any] = tickschema.to_fields(ghost, ghost=True)
                pipe.xadd(keys.ghost_stream(symbol), twin)
        await pipe.execute()


def _total(out: Path) -> float:
    text = subprocess.run(
        ["callgrind_annotate", str(out)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text)
    if match is None:
        raise RuntimeError(f"no total in callgrind_annotate's output: {text[:500]!r}")
    return float(match.group(1).replace(",", ""))
