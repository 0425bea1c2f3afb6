"""Downloads of any size, produced in chunks so memory stays flat: a symbol's ticks over a time
range (the Parquet archive joined with the live stream), bars made from them, and a pair's
analytics history (archive joined with the 1-second series in Redis).

The tick seam: the archive holds a prefix of each tick stream (the Archivist writes entries in
stream order, each once). The newest stream id in the symbol's archive is the seam: ticks up
to it come from the archive, ticks after it from the stream (``XRANGE`` from just past it), so
every tick comes from exactly one source, with no gap as long as the stream still holds what
the Archivist has not written yet (it trims only what is minutes old). Only the real venue's
ticks are served (the ghost venue is a simulation).

The analytics seam is by time: archive rows up to the newest archived second, Redis samples
after it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spreadbus.analytics.resample import BAR_MILLISECONDS, Rule, resample
from spreadbus.archivist.compaction import partition_parts
from spreadbus.archivist.convert import ANALYTICS_METRICS, SCHEMAS
from spreadbus.archivist.layout import day_start_ms, partition_dir
from spreadbus.archivist.reader import list_files, read_analytics, read_ticks
from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import CodecError

CHUNK: Final = 20_000
DAY_MS: Final = 86_400_000
GHOST: Final = "ghost"
TICK_COLUMNS: Final = (
    "stream_id", "symbol", "trade_id", "price", "qty", "side",
    "trade_ts", "event_ts", "recv_ts", "source",
)  # fmt: skip
BAR_COLUMNS: Final = ("ts_ms", "open", "high", "low", "close", "volume", "trades")
TICK_SCHEMA: Final = pa.schema(
    [("stream_id", pa.string()), ("symbol", pa.string()), ("trade_id", pa.int64()),
     ("price", pa.string()), ("qty", pa.string()), ("side", pa.string()),
     ("trade_ts", pa.int64()), ("event_ts", pa.int64()), ("recv_ts", pa.float64()),
     ("source", pa.string())]
)  # fmt: skip
Row = tuple[Any, ...]


def _archive_dates(archive_dir: Path, dataset: str, key: str) -> list[str]:
    return sorted(
        {f.date for f in list_files(archive_dir) if f.dataset == dataset and f.key == key}
    )


def _real(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["venue"] != GHOST]


def _day_parts(archive_dir: Path, symbol: str, date: str) -> list[Path]:
    partition = partition_dir(archive_dir, "ticks", symbol, date)
    try:
        return partition_parts(partition)
    except FileNotFoundError:  # swapped by a compaction just now, or gone
        return []


StreamKey = tuple[int, int]  # a stream id as (ms, sequence)


def _real_id_range(path: Path) -> tuple[StreamKey, StreamKey] | None:
    """The oldest and newest stream id of a part's real ticks (None: it has none). Reads two
    columns a batch at a time: memory does not grow with the part's size."""
    oldest: StreamKey | None = None
    newest: StreamKey | None = None
    for batch in _parquet(path).iter_batches(CHUNK, columns=["venue", "stream_id"]):
        ids = pc.filter(batch.column("stream_id"), pc.not_equal(batch.column("venue"), GHOST))
        if len(ids) == 0:
            continue
        # "<ms>-<seq>", or a bare "<ms>" (sequence 0, as streamid.parse reads it)
        parts = pc.split_pattern(pc.binary_join_element_wise(ids, "0", "-"), "-")
        ms = pc.cast(pc.list_element(parts, 0), pa.int64()).to_numpy()
        seq = pc.cast(pc.list_element(parts, 1), pa.int64()).to_numpy()
        order = np.lexsort((seq, ms))
        low, high = int(order[0]), int(order[-1])
        first, last = (int(ms[low]), int(seq[low])), (int(ms[high]), int(seq[high]))
        oldest = first if oldest is None else min(oldest, first)
        newest = last if newest is None else max(newest, last)
    return None if oldest is None or newest is None else (oldest, newest)


def _tick_seam(archive_dir: Path, symbol: str, dates: list[str]) -> str | None:
    """The newest archived stream id of the symbol's real ticks (None: nothing archived)."""
    for date in reversed(dates):
        ranges = [_real_id_range(path) for path in _day_parts(archive_dir, symbol, date)]
        newest = max((r[1] for r in ranges if r is not None), default=None)
        if newest is not None:
            return f"{newest[0]}-{newest[1]}"
    return None


def _in_sequence(parts: list[Path]) -> list[Path] | None:
    """The parts in stream-id order if their real ticks do not interleave (each part's oldest
    id after the previous part's newest: batches the archivist wrote one after another), so
    streaming them in turn equals the reader's merge; None if they do (a batch written again
    after a crash), and only the merge removes the repeats."""
    ranges = []
    for path in parts:
        found = _real_id_range(path)
        if found is not None:
            ranges.append((found, path))
    ranges.sort()
    for (before, _), (after, _) in itertools.pairwise(ranges):
        if after[0] <= before[1]:
            return None
    return [path for _, path in ranges]


def _parquet(path: Path) -> pq.ParquetFile:
    """A Parquet file read page by page (not a whole column chunk at once)."""
    return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)


def _archive_day(
    archive_dir: Path, symbol: str, date: str, lo: int, hi: int
) -> Iterator[pd.DataFrame]:
    """The day's real ticks with ``lo <= ts < hi`` in trade order, as frames of at most
    :data:`CHUNK` rows. A part (compacted, or a single batch) is sorted with each entry once,
    so a day of one part, or of several whose real ticks do not interleave (today's batches
    before their compaction, :func:`_in_sequence`), streams a part and a batch at a time,
    skipping row groups outside the range. Parts that interleave (a batch written again
    after a crash) need the reader's merge to drop the repeats and are read whole, as is a
    day compacted between listing and opening (the reader lists again)."""
    listed = _day_parts(archive_dir, symbol, date)
    try:
        parts = listed if len(listed) == 1 else _in_sequence(listed) if listed else None
        sources = None if parts is None else [_parquet(path) for path in parts]
    except FileNotFoundError:  # compacted between listing and opening
        sources = None
    if sources is None:
        frame = _real(read_ticks(archive_dir, symbol, lo, hi))
        for offset in range(0, len(frame), CHUNK):
            yield frame.iloc[offset : offset + CHUNK]
        return
    for source in sources:
        yield from _part_frames(source, lo, hi)


def _part_frames(source: pq.ParquetFile, lo: int, hi: int) -> Iterator[pd.DataFrame]:
    """One part's real ticks with ``lo <= ts < hi``, a batch at a time."""
    schema = SCHEMAS["ticks"]
    ts_index = source.schema_arrow.get_field_index("ts")
    groups = []
    for group in range(source.num_row_groups):
        stats = source.metadata.row_group(group).column(ts_index).statistics
        if stats is not None and stats.has_min_max:
            first, last = (pd.Timestamp(v).value // 1_000_000 for v in (stats.min, stats.max))
            if last < lo or first >= hi:
                continue
        groups.append(group)
    for batch in source.iter_batches(CHUNK, row_groups=groups):
        table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
        ts = pc.cast(table["ts"], pa.int64())
        keep = pc.and_(
            pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)),
            pc.not_equal(table["venue"], GHOST),
        )
        table = table.filter(keep)
        if table.num_rows:
            yield table.to_pandas()


def _ms(column: pd.Series) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(column).as_unit("ms").asi8, dtype=np.int64)


def _archive_rows(frame: pd.DataFrame, symbol: str) -> list[Row]:
    recv_ms = np.asarray(pd.DatetimeIndex(frame["recv_ts"]).as_unit("us").asi8) / 1000.0
    columns = zip(
        frame["stream_id"].tolist(),
        frame["trade_id"].tolist(),
        frame["price_text"].tolist(),
        frame["qty_text"].tolist(),
        frame["side"].tolist(),
        _ms(frame["ts"]).tolist(),
        _ms(frame["event_ts"]).tolist(),
        recv_ms.tolist(),
        frame["venue"].tolist(),
        strict=True,
    )
    return [
        (sid, symbol, tid, p, q, side, t, e, round(r, 3), src)
        for sid, tid, p, q, side, t, e, r, src in columns
    ]


async def tick_chunks(
    client: Any, archive_dir: Path, symbol: str, start_ms: int, end_ms: int
) -> AsyncIterator[list[Row]]:
    """The symbol's real ticks with ``start_ms <= trade_ts < end_ms``: archive first, then
    the stream past the seam, as lists of :data:`TICK_COLUMNS` rows (at most :data:`CHUNK`)."""
    dates = await asyncio.to_thread(_archive_dates, archive_dir, "ticks", symbol)
    seam = await asyncio.to_thread(_tick_seam, archive_dir, symbol, dates)
    for date in dates:
        day = day_start_ms(date)
        lo, hi = max(start_ms, day), min(end_ms, day + DAY_MS)
        if lo >= hi:
            continue
        frames = _archive_day(archive_dir, symbol, date, lo, hi)
        while (frame := await asyncio.to_thread(next, frames, None)) is not None:
            yield _archive_rows(frame, symbol)
    cursor = "-" if seam is None else f"({seam}"
    key = keys.tick_stream(symbol)
    while True:
        entries = await client.xrange(key, min=cursor, max="+", count=CHUNK)
        rows: list[Row] = []
        for raw_id, fields in entries:
            try:
                tick = tickschema.decode(fields, raw_id, symbol)
            except CodecError:
                continue  # not a tick: the gateway never writes one
            if start_ms <= tick.trade_ts < end_ms:
                stream_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                rows.append(
                    (stream_id, tick.symbol, tick.trade_id, tick.price, tick.qty, tick.side,
                     tick.trade_ts, tick.event_ts, round(tick.recv_ts, 3), tick.source)
                )  # fmt: skip
        if rows:
            yield rows
        if len(entries) < CHUNK:
            return
        last = entries[-1][0]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))


async def bar_chunks(ticks: AsyncIterator[list[Row]], bar: Rule) -> AsyncIterator[list[Row]]:
    """Bars of ``bar`` from tick chunks (``trade_ts`` sorted): :func:`analytics.resample` per
    chunk, the bar cut by a chunk's end merged with its continuation, quiet bars between
    chunks filled as resample fills them (previous close, no volume)."""
    bar_ms = BAR_MILLISECONDS[bar]
    held: list[Any] | None = None  # the last bar so far: it may continue in the next chunk
    async for chunk in ticks:
        frame = pd.DataFrame(
            {
                "ts": [r[6] for r in chunk],
                "price": [float(r[3]) for r in chunk],
                "qty": [float(r[4]) for r in chunk],
            }
        )
        bars = resample(frame, bar)
        rows = [
            [int(ts), o, h, lo, c, v, int(n)]
            for ts, o, h, lo, c, v, n in zip(
                pd.DatetimeIndex(bars.index).as_unit("ms").asi8.tolist(),
                bars["open"].tolist(), bars["high"].tolist(), bars["low"].tolist(),
                bars["close"].tolist(), bars["volume"].tolist(), bars["trades"].tolist(),
                strict=True,
            )
        ]  # fmt: skip
        out: list[Row] = []
        if held is not None:
            if rows[0][0] == held[0]:
                first = rows.pop(0)
                held = [held[0], held[1], max(held[2], first[2]), min(held[3], first[3]),
                        first[4], held[5] + first[5], held[6] + first[6]]  # fmt: skip
            if rows:
                out.append(tuple(held))
                close = held[4]
                for ts in range(held[0] + bar_ms, rows[0][0], bar_ms):
                    out.append((ts, close, close, close, close, 0.0, 0))
                held = None
        if rows:
            held = rows.pop()
            out.extend(tuple(r) for r in rows)
        if out:
            yield out
    if held is not None:
        yield [tuple(held)]


async def analytics_chunks(
    client: Any, archive_dir: Path, pair: str, start_ms: int, end_ms: int
) -> AsyncIterator[list[Row]]:
    """A pair's 1-second analytics ``(ts_ms, *ANALYTICS_METRICS)`` in ``[start_ms, end_ms)``:
    archive rows, then Redis samples newer than the newest archived second."""
    dates = await asyncio.to_thread(_archive_dates, archive_dir, "analytics", pair)
    newest = -1
    for date in dates:
        day = day_start_ms(date)
        frame = await asyncio.to_thread(read_analytics, archive_dir, pair, day, day + DAY_MS)
        if len(frame):
            stamps = _ms(frame["ts"])
            newest = max(newest, int(stamps.max()))
            keep = (stamps >= start_ms) & (stamps < end_ms)
            if keep.any():
                values = [frame[m].to_numpy()[keep].tolist() for m in ANALYTICS_METRICS]
                yield [tuple(r) for r in zip(stamps[keep].tolist(), *values, strict=True)]
    lo = max(start_ms, newest + 1)
    if lo >= end_ms:
        return
    async with client.pipeline(transaction=False) as pipe:
        for metric in ANALYTICS_METRICS:
            pipe.execute_command("TS.RANGE", keys.analytics_series(pair, metric), lo, end_ms - 1)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    table: dict[int, list[float | None]] = {}
    for index, reply in enumerate(replies):
        if isinstance(reply, Exception):
            continue  # no such series (yet)
        for ts, value in reply:
            table.setdefault(int(ts), [None] * len(ANALYTICS_METRICS))[index] = float(value)
    rows = [(ts, *values) for ts, values in sorted(table.items())]
    for offset in range(0, len(rows), CHUNK):
        yield rows[offset : offset + CHUNK]


# ---- encodings ---------------------------------------------------------------------------------
async def csv_bytes(
    header: Sequence[str], chunks: AsyncIterator[list[Row]]
) -> AsyncIterator[bytes]:
    """CSV text, one piece per chunk, header first."""
    yield _csv_text([header])
    async for rows in chunks:
        yield _csv_text(rows)


def _csv_text(rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([("" if v is None else v) for v in row] for row in rows)
    return buffer.getvalue().encode()


async def write_parquet(path: Path, schema: pa.Schema, chunks: AsyncIterator[list[Row]]) -> int:
    """Write the chunks as row groups of one Parquet file; returns the row count."""
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        async for rows in chunks:
            columns = list(zip(*rows, strict=True))
            table = pa.table(
                [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)],
                schema=schema,
            )
            await asyncio.to_thread(writer.write_table, table)
            count += len(rows)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count


BAR_SCHEMA: Final = pa.schema(
    [("ts_ms", pa.int64()), ("open", pa.float64()), ("high", pa.float64()),
     ("low", pa.float64()), ("close", pa.float64()), ("volume", pa.float64()),
     ("trades", pa.int64())]
)  # fmt: skip
ANALYTICS_COLUMNS: Final = ("ts_ms", *ANALYTICS_METRICS)
ANALYTICS_SCHEMA: Final = pa.schema(
    [("ts_ms", pa.int64()), *((m, pa.float64()) for m in ANALYTICS_METRICS)]
)
