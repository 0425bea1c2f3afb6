"""Tick downloads read the archive a batch at a time: over a day file of many row groups, a
day of several parts that follow each other (streamed part by part) and one of interleaved
parts (the reader's merge), they equal the archive reader's answer, each real tick once,
ghosts excluded, and the stream continues after the newest archived id."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis

from spreadbus.archivist.convert import SCHEMAS
from spreadbus.archivist.layout import archive_root, date_of_ms, part_name, partition_dir
from spreadbus.archivist.reader import read_ticks
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields
from spreadbus.research import downloads

DAY_MS = 86_400_000
T0 = 1_795_000_000_000 // DAY_MS * DAY_MS + 3_600_000  # 01:00 of a day
SYMBOL = "BTCUSDT"


def _tick(i: int) -> Tick:
    t = T0 + (i // 2) * 5  # two trades per millisecond now and then
    return Tick(SYMBOL, 100 + i, f"{98000 + i % 97}.{i % 10}", f"0.{i % 9 + 1}", "buy",
                t, t + 1, t + 2.5, "binance")  # fmt: skip


def _table(ticks: list[Tick]) -> pa.Table:
    rows = [(t, v) for t in ticks for v in ("binance", "ghost")]
    return pa.table(
        {
            "ts": [t.trade_ts for t, _ in rows], "venue": [v for _, v in rows],
            "trade_id": [t.trade_id for t, _ in rows],
            "price": [float(t.price) + (3 if v == "ghost" else 0) for t, v in rows],
            "qty": [float(t.qty) for t, _ in rows], "side": [t.side for t, _ in rows],
            "event_ts": [t.event_ts for t, _ in rows],
            "recv_ts": [int(t.recv_ts * 1000) for t, _ in rows],
            "price_text": [t.price for t, _ in rows], "qty_text": [t.qty for t, _ in rows],
            "stream_id": [f"{t.trade_ts}-{t.trade_id}" for t, _ in rows],
        },
        schema=SCHEMAS["ticks"],
    ).sort_by([("ts", "ascending"), ("venue", "ascending"), ("trade_id", "ascending")])  # fmt: skip


def _write(archive: Path, ticks: list[Tick], batch: int, row_group: int) -> None:
    path = partition_dir(archive, "ticks", SYMBOL, date_of_ms(T0)) / part_name(batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(ticks), path, row_group_size=row_group)


async def _collect(client: aioredis.Redis, archive: Path, lo: int, hi: int) -> list[tuple]:  # type: ignore[type-arg]
    return [row async for chunk in downloads.tick_chunks(client, archive, SYMBOL, lo, hi)
            for row in chunk]  # fmt: skip


@pytest.mark.parametrize(
    "layout",
    ["one part, row groups of 64", "three parts in sequence", "two overlapping parts"],
)
async def test_archive_streams_equal_the_reader_and_join_the_stream_once(
    aredis: aioredis.Redis,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
) -> None:
    monkeypatch.setattr(downloads, "CHUNK", 50)
    archive = archive_root(data_dir)
    ticks = [_tick(i) for i in range(1000)]
    if layout.startswith("one"):
        _write(archive, ticks[:700], 1, 64)
    elif layout.startswith("three"):  # today's batches before compaction, listed out of order
        _write(archive, ticks[300:520], 3, 64)
        _write(archive, ticks[:300], 1, 64)
        _write(archive, ticks[520:700], 7, 64)
    else:  # a batch written again after a crash: 500-599 in both parts
        _write(archive, ticks[:600], 1, 1_000_000)
        _write(archive, ticks[500:700], 2, 1_000_000)
    stream = keys.tick_stream(SYMBOL)
    for tick in ticks[650:]:  # the stream still holds 650-699, already archived
        entry_id = f"{tick.trade_ts}-{tick.trade_id}"
        await aredis.xadd(stream, to_fields(tick), id=entry_id)  # type: ignore[arg-type]
    whole_day_reads: list[int] = []

    def counted(*args: object, **kwargs: object) -> object:
        whole_day_reads.append(1)
        return read_ticks(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(downloads, "read_ticks", counted)
    lo, hi = ticks[123].trade_ts, ticks[911].trade_ts  # inside row groups on both ends
    got = await _collect(aredis, archive, lo, hi)
    archived = read_ticks(archive, SYMBOL, lo, hi, venue="binance")
    in_range = [t for t in ticks if lo <= t.trade_ts < hi]
    assert [r[2] for r in got] == [t.trade_id for t in in_range]  # each once, in order
    n_archived = sum(1 for t in in_range if t.trade_id < 800)  # ids 100-799: archived
    assert [r[2] for r in got[:n_archived]] == archived["trade_id"].tolist()
    assert [(r[0], r[3], r[4], r[6]) for r in got] == [
        (f"{t.trade_ts}-{t.trade_id}", t.price, t.qty, t.trade_ts) for t in in_range
    ]
    # parts that follow each other stream (never read whole); interleaved ones (a repeated
    # batch) go through the reader's merge
    assert bool(whole_day_reads) == layout.startswith("two")
