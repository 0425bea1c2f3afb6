"""The tick contract end to end: what the gateway's writer puts in Redis is read by the engine
and the archivist on their fast paths (no entry falls back to the schema's slow decoder), and
the values they get are the ticks that were written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from spreadbus.archivist import convert
from spreadbus.archivist.sources import read_entries
from spreadbus.archivist.spool import Spool, read_segments
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.config import Settings
from spreadbus.engine import entries
from spreadbus.engine.consumer import StreamReader, reader_client

SYMBOL = "ETHUSDT"
T0 = 1795305600000


def written_ticks() -> tuple[list[Tick], list[Tick]]:
    real = []
    for i in range(200):
        price, qty = f"{3500 + i * 0.01:.2f}", f"{0.001 * (i % 7 + 1):.3f}"
        side = "buy" if i % 3 else "sell"
        ms = T0 + i // 4  # four trades a millisecond
        real.append(Tick(SYMBOL, 100 + i, price, qty, side, ms, ms + 2, ms + 3.125, "binance"))
    ghosts = [
        t._replace(price=f"{float(t.price) + 0.05:.2f}", recv_ts=t.recv_ts + 40.5, source="ghost")
        for t in real[:50]
    ]
    return real, ghosts


def refuse(*_: Any, **__: Any) -> Any:
    raise AssertionError("an entry the gateway wrote took the slow path")


async def test_gateway_entries_take_the_engine_and_archivist_fast_paths(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, ghosts = written_ticks()
    writer = TickWriter(aredis)
    await writer.prepare([SYMBOL])
    result = await writer.write({SYMBOL: SymbolBatch(real, ghosts)})
    assert (result.added, result.ghosts) == (200, 50)
    streams = {keys.tick_stream(SYMBOL): "0-0", keys.ghost_stream(SYMBOL): "0-0"}

    # the engine: its own raw-reply reader, its column decoder with the slow path refused
    monkeypatch.setattr(entries, "_slow", refuse)
    client = reader_client(settings)
    try:
        batch = await StreamReader(client, count=1000).read(streams, block=False)
    finally:
        await client.aclose()
    got = {stream: entries.decode_many(raw) for stream, raw in batch}
    for stream, want in ((keys.tick_stream(SYMBOL), real), (keys.ghost_stream(SYMBOL), ghosts)):
        points, bad = got[stream]
        assert bad == []
        assert points.trade_ms == [t.trade_ts for t in want]
        assert points.price == [float(t.price) for t in want]
        assert points.qty == [float(t.qty) for t in want]
        assert points.recv_ms == [t.recv_ts for t in want]  # exact: the float's shortest text
        assert points.event_ms == [t.event_ts for t in want]

    # the archivist: its reader, the spool on disk, the vectorized conversion only
    monkeypatch.setattr(convert, "_one_by_one", refuse)
    read = await read_entries(aredis, streams, count=1000, block_ms=None)
    spool = Spool(tmp_path)
    spool.recover(0)
    spool.append(read)
    records = list(read_segments(path for _, path in spool.seal()))
    archived = convert.ticks_from_records(records, {})
    assert (archived.count, archived.rejected) == (250, 0)
    rows = archived.tables[(SYMBOL, "2026-11-22")].to_pylist()
    by_venue: dict[str, list[tuple[int, str, str, str]]] = {"binance": [], "ghost": []}
    for r in rows:
        by_venue[r["venue"]].append((r["trade_id"], r["price_text"], r["qty_text"], r["side"]))
    for venue, want in (("binance", real), ("ghost", ghosts)):
        assert sorted(by_venue[venue]) == sorted((t.trade_id, t.price, t.qty, t.side) for t in want)
    times = {(r["venue"], r["trade_id"]): r["ts"].timestamp() * 1000 for r in rows}
    assert all(times[("binance", t.trade_id)] == t.trade_ts for t in real)
    assert all(times[("ghost", t.trade_id)] == t.trade_ts for t in ghosts)
