"""The Redis edge: where streams start, the per-slot read path of Redis Cluster, the warm
start from the price series and the Parquet archive, and the cluster write path."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.connect import connect
from spreadbus.config import Settings
from spreadbus.engine.consumer import (
    StreamHead,
    StreamReader,
    load_cursor,
    plan_start,
    slot_groups,
    stream_heads,
)
from spreadbus.engine.core import StreamPosition, WriteSet
from spreadbus.engine.warmstart import archive_bars, warm_bars
from spreadbus.engine.writer import SnapshotWriter, WriteError

from .helpers import START_MS, ghost_ticks, leg_closes, publish, sim_ticks

REAL = keys.tick_stream("ETHUSDT")
GHOST = keys.ghost_stream("ETHUSDT")


def test_slot_groups_keep_a_symbols_streams_together() -> None:
    streams = [keys.tick_stream(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    streams += [keys.ghost_stream(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    groups = slot_groups(streams)
    for group in groups:
        assert len({key_slot(k.encode()) for k in group}) == 1
    assert sorted(map(sorted, groups)) == sorted(
        sorted([keys.tick_stream(s), keys.ghost_stream(s)])
        for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    )


def test_where_streams_start() -> None:
    head = StreamHead(last_id="1795314960000-7", first_id="1795314900000-1", max_deleted_id="0-0")
    # a new stream that does not exist yet: from its beginning, nothing to warm
    assert plan_start(REAL, None, None).position.last_id == "0-0"
    assert plan_start(REAL, None, None).warm_until_ms is None
    # no cursor yet: from the head, history from the price series up to it (not for ghosts)
    start = plan_start(REAL, None, head)
    assert (start.position.last_id, start.warm_until_ms) == (head.last_id, 1795314960000)
    assert plan_start(GHOST, None, head).warm_until_ms is None
    # a cursor: exactly after it, warmed up to its trade millisecond
    saved = StreamPosition("1795314930000-3", 120, 2)
    start = plan_start(REAL, saved, head)
    assert start.position == saved and start.warm_until_ms == 1795314930000
    assert start.trimmed_after is None
    # entries after the cursor were trimmed away unread: resume at the oldest one left, the
    # price series covers what was lost
    trimmed = StreamHead(head.last_id, first_id="1795314950000-0", max_deleted_id="1795314949999-9")
    start = plan_start(REAL, saved, trimmed)
    assert start.trimmed_after == saved.last_id
    assert start.position.last_id == "1795314949999-18446744073709551615"
    assert (start.position.processed, start.position.bad) == (120, 2)
    assert start.warm_until_ms == 1795314949999


async def test_grouped_reads_return_what_one_xread_returns(aredis: aioredis.Redis) -> None:
    ticks = sim_ticks(["ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT"], 5, seed=3)
    await publish(aredis, ticks, ghost_ticks(ticks))
    positions = {
        key: "0-0"
        for s in ("ETHUSDT", "BTCUSDT", "SOLUSDT")
        for key in (keys.tick_stream(s), keys.ghost_stream(s))
    }
    single = await StreamReader(aredis, count=50).read(positions, block=False)
    grouped = await StreamReader(aredis, count=50, grouped=True).read(positions, block=False)
    assert sorted(single) == sorted(grouped)
    assert len(single) == 6 and all(len(entries) == 50 for _, entries in single)
    # real streams come first: ghosts are matched against the batch's real trades
    for batch in (single, grouped):
        flags = [stream.endswith(keys.GHOST_SUFFIX) for stream, _ in batch]
        assert flags == sorted(flags)
    # nothing waiting: a blocking read comes back empty after block_ms, in both modes
    nothing = {keys.tick_stream("NOPEUSDT"): "0-0"}
    assert await StreamReader(aredis, block_ms=10).read(nothing) == []
    assert await StreamReader(aredis, block_ms=10, grouped=True).read(nothing) == []


async def test_warm_bars_from_the_price_series(aredis: aioredis.Redis) -> None:
    ticks = sim_ticks(["ETHUSDT/BTCUSDT"], 40, seed=4)
    await publish(aredis, ticks)
    eth = [t for t in ticks if t.symbol == "ETHUSDT"]
    until = eth[len(eth) // 2].trade_ts
    bars, last_ms, source = await warm_bars(aredis, "ETHUSDT", until, span_s=15)
    closes = leg_closes([t for t in eth if t.trade_ts <= until], "ETHUSDT")
    traded = {t.trade_ts // 1000 for t in eth if t.trade_ts <= until}
    want = [(int(ts.value // 10**9), float(p)) for ts, p in closes.items()]
    want = [(s, p) for s, p in want if s in traded and s > until // 1000 - 15]
    assert bars == want and source == "series"
    assert last_ms == until


def _archive_ticks(data_dir: Path, ticks: list[Tick]) -> None:
    """Ticks as the Archivist stores them (its own part-file writer and layout)."""
    from spreadbus.archivist.convert import TICK_SCHEMA
    from spreadbus.archivist.layout import archive_root, date_of_ms, part_name, partition_dir
    from spreadbus.archivist.writer import write_part_file

    symbol = ticks[0].symbol
    date = date_of_ms(ticks[0].trade_ts)
    columns = {
        "ts": [t.trade_ts for t in ticks],
        "venue": [t.source for t in ticks],
        "trade_id": [t.trade_id for t in ticks],
        "price": [float(t.price) for t in ticks],
        "qty": [float(t.qty) for t in ticks],
        "side": [t.side for t in ticks],
        "event_ts": [t.event_ts for t in ticks],
        "recv_ts": [int(t.recv_ts * 1000) for t in ticks],
        "price_text": [t.price for t in ticks],
        "qty_text": [t.qty for t in ticks],
        "stream_id": [t.stream_id for t in ticks],
    }
    table = pa.Table.from_pydict(columns, schema=TICK_SCHEMA)
    folder = partition_dir(archive_root(data_dir), "ticks", symbol, date)
    folder.mkdir(parents=True)
    write_part_file(folder / part_name(1), "ticks", symbol, date, table)


async def test_warm_start_reaches_into_the_archive(aredis: aioredis.Redis, data_dir: Path) -> None:
    pytest.importorskip("spreadbus.archivist.reader")
    ticks = [t for t in sim_ticks(["ETHUSDT/BTCUSDT"], 60, seed=5) if t.symbol == "ETHUSDT"]
    split = START_MS + 30_000
    old = [t for t in ticks if t.trade_ts < split]
    ghosts = [Tick(t.symbol, t.trade_id, "1.0", t.qty, t.side, t.trade_ts, t.event_ts,
                   t.recv_ts, "ghost") for t in old[:50]]  # fmt: skip
    _archive_ticks(data_dir, old + ghosts)  # the ghost venue's rows must be left out
    await publish(aredis, [t for t in ticks if t.trade_ts >= split])  # the series: newer only
    until = ticks[-1].trade_ts
    bars, last_ms, source = await warm_bars(aredis, "ETHUSDT", until, 60, data_dir)
    closes = leg_closes(ticks, "ETHUSDT")
    traded = {t.trade_ts // 1000 for t in ticks}
    want = [(int(ts.value // 10**9), float(p)) for ts, p in closes.items()]
    assert bars == [(s, p) for s, p in want if s in traded]
    assert source == "archive+series" and last_ms == until
    # no archive at all: what the series has
    assert archive_bars(data_dir / "nothing", "ETHUSDT", 0, until) == []


async def test_cluster_write_path_stores_the_same(aredis: aioredis.Redis) -> None:
    """On a cluster the results and the cursor go in two pipelines; the end state is the same."""
    batch = WriteSet(
        pair_fields={"ETHUSDT/BTCUSDT": {"beta": 0.5, "zscore": float("nan"), "n": 20}},
        symbol_fields={"ETHUSDT": {"price": 3500.5}},
        positions={REAL: StreamPosition("1795314960000-7", 11, 1)},
        counts={REAL: (11, 1), GHOST: (5, 0)},
    )
    for cluster in (False, True):
        await aredis.flushdb()
        await SnapshotWriter(aredis, cluster).write(batch)
        state = await aredis.hgetall(keys.analytics_state("ETHUSDT/BTCUSDT"))
        assert state == {b"beta": b"0.5", b"zscore": b"nan", b"n": b"20"}
        assert await aredis.hget(keys.analytics_state("ETHUSDT"), "price") == b"3500.5"
        cursor = await load_cursor(aredis)
        assert cursor == {REAL: StreamPosition("1795314960000-7", 11, 1)}  # GHOST never moved


async def test_a_refused_command_is_reported_and_the_rest_stored(aredis: aioredis.Redis) -> None:
    """As in a transaction: one sample Redis refuses (its series is not a series) does not
    stop the batch; the snapshot and the cursor are stored, the refusal is reported."""
    pair = "ETHUSDT/BTCUSDT"
    await aredis.set(keys.analytics_series(pair, "beta"), "not a series")
    await aredis.execute_command("TS.CREATE", keys.analytics_series(pair, "corr"))
    batch = WriteSet(
        pair_fields={pair: {"beta": 0.5, "n": 20}},
        pair_series={pair: [("beta", START_MS, 0.5), ("corr", START_MS, 0.25)]},
        positions={REAL: StreamPosition(f"{START_MS}-1", 3, 0)},
        counts={REAL: (3, 0)},
    )
    writer = SnapshotWriter(aredis, cluster=False)
    with pytest.raises(WriteError, match="1 command"):
        await writer.write(batch)
    assert writer.refused == 1
    assert await aredis.hget(keys.analytics_state(pair), "beta") == b"0.5"
    rows = await aredis.execute_command("TS.RANGE", keys.analytics_series(pair, "corr"), "-", "+")
    assert [(int(ts), float(v)) for ts, v in rows] == [(START_MS, 0.25)]
    assert (await load_cursor(aredis))[REAL] == StreamPosition(f"{START_MS}-1", 3, 0)


async def test_stream_heads_read_what_xinfo_says(
    aredis: aioredis.Redis, redis_cluster_url: str
) -> None:
    """Last id, first entry and largest deleted id of each stream, as redis-py's own XINFO
    parsing reads them, on a single node and on a cluster; a missing stream is left out."""

    cluster = connect(Settings(redis_url=redis_cluster_url))
    try:
        for client in (aredis, cluster):
            streams = [keys.tick_stream(f"H{i}USDT") for i in range(6)]
            for i, stream in enumerate(streams[:5]):
                for n in range(1, 6 + i):
                    await client.xadd(stream, {"t": "x"}, id=f"{1000 + n}-{n}")
            await client.xdel(streams[1], "1001-1", "1005-5")  # first and last entries gone
            heads = await stream_heads(client, streams)
            assert set(heads) == set(streams[:5])
            for stream in streams[:5]:
                info = await client.xinfo_stream(stream)
                first = info["first-entry"][0].decode() if info["first-entry"] else None
                assert heads[stream] == StreamHead(
                    last_id=info["last-generated-id"].decode(),
                    first_id=first,
                    max_deleted_id=info["max-deleted-entry-id"].decode(),
                )
            assert heads[streams[1]].first_id == "1002-2"
            assert heads[streams[1]].max_deleted_id == "1005-5"
    finally:
        await cluster.aclose()
