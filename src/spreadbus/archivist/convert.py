"""Pure conversions: spool records and TimeSeries samples to Arrow tables, and the dedupe
rules compaction and readers apply. No I/O here.

Schemas (partition columns ``symbol`` / ``pair`` and ``date`` come from the path):

- ticks: ``ts`` (trade time, UTC ms), ``venue`` (the tick's source, ``ghost`` for the ghost
  venue), ``trade_id``, ``price``/``qty`` (float64) with ``price_text``/``qty_text`` (the
  exchange's exact decimal text), ``side`` (taker side), ``event_ts``, ``recv_ts`` (UTC us),
  ``stream_id`` (the Redis entry id, the identity used for exactly-once).
- candles: ``ts`` (minute start, UTC ms), ``open``, ``high``, ``low``, ``close``, ``volume``.
- analytics: ``ts`` (UTC ms) and one float64 column per metric, null where the engine wrote
  no sample for that second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spreadbus.archivist.layout import DAY_MS, Dataset, date_of_ms, day_text
from spreadbus.archivist.spool import ZERO_ID, SpoolRecord, StreamId, parse_id
from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import CodecError

UTC_MS = pa.timestamp("ms", tz="UTC")
UTC_US = pa.timestamp("us", tz="UTC")

TICK_SCHEMA: Final = pa.schema(
    [
        ("ts", UTC_MS),
        ("venue", pa.string()),
        ("trade_id", pa.int64()),
        ("price", pa.float64()),
        ("qty", pa.float64()),
        ("side", pa.string()),
        ("event_ts", UTC_MS),
        ("recv_ts", UTC_US),
        ("price_text", pa.string()),
        ("qty_text", pa.string()),
        ("stream_id", pa.string()),
    ]
)
CANDLE_SCHEMA: Final = pa.schema(
    [("ts", UTC_MS), *((name, pa.float64()) for name in keys.CANDLE_FIELDS)]
)
ANALYTICS_METRICS: Final = ("beta", "spread", "zscore", "corr", "adf_pvalue")
ANALYTICS_SCHEMA: Final = pa.schema(
    [("ts", UTC_MS), *((name, pa.float64()) for name in ANALYTICS_METRICS)]
)
SCHEMAS: Final[dict[Dataset, pa.Schema]] = {
    "ticks": TICK_SCHEMA,
    "candles": CANDLE_SCHEMA,
    "analytics": ANALYTICS_SCHEMA,
}

Sample = tuple[int, float]


def warm_up() -> None:
    """Pay pyarrow's one-time cost of the first time-zone-aware array (it imports pandas,
    ~0.5 s) at start-up rather than in the first batch."""
    pa.array([0], type=pa.int64()).cast(UTC_MS)


CandleRow = tuple[int, float, float, float, float, float]


@dataclass(slots=True)
class TickBatch:
    """Ticks of a batch split by partition, and what the batch advances."""

    tables: dict[tuple[str, str], pa.Table] = field(default_factory=dict)  # (symbol, date)
    cursors: dict[str, StreamId] = field(default_factory=dict)  # stream -> highest entry id
    ordinals: dict[str, int | None] = field(default_factory=dict)  # ... and its ordinal
    count: int = 0
    rejected: int = 0  # entries that are not valid ticks (logged, counted, skipped)
    duplicates: int = 0  # entries seen twice or already archived (never written again)


def ticks_from_records(
    records: Iterable[SpoolRecord], archived: Mapping[str, StreamId], chunk: int = 50_000
) -> TickBatch:
    """Spool records -> tick tables per (symbol, date).

    An entry is written at most once: within a stream the spool holds ids in increasing order,
    so an entry is skipped when its id is not above both the stream's committed cursor
    (``archived``) and every id of that stream seen before in the batch. Entries that are not
    valid ticks (by the rules of :func:`spreadbus.bus.tickschema.decode`) are counted in
    ``rejected`` and skipped; the cursor still moves past them. Records are converted
    ``chunk`` at a time, so memory stays small whatever the batch size.
    """
    batch = TickBatch()
    high = dict(archived)
    pieces: list[pa.Table] = []
    streams: list[str] = []
    ids: list[str] = []
    entries: list[dict[str, str] | list[str]] = []
    for stream, entry_id, fields, ordinal in records:
        entry = parse_id(entry_id)
        if entry <= high.get(stream, ZERO_ID):
            batch.duplicates += 1
            continue
        high[stream] = batch.cursors[stream] = entry
        batch.ordinals[stream] = ordinal
        streams.append(stream)
        ids.append(entry_id)
        entries.append(fields)
        if len(entries) >= chunk:
            pieces.append(_convert(streams, ids, entries))
            batch.rejected += len(entries) - pieces[-1].num_rows
            streams, ids, entries = [], [], []
    if entries:
        pieces.append(_convert(streams, ids, entries))
        batch.rejected += len(entries) - pieces[-1].num_rows
    if pieces:
        table = pa.concat_tables(pieces)
        batch.count = table.num_rows
        batch.tables = _split(table)
    return batch


def _convert(
    streams: list[str], ids: list[str], entries: list[dict[str, str] | list[str]]
) -> pa.Table:
    table = _vectorized(streams, ids, entries)
    if table is None:  # something unusual in the chunk: the codec decides, entry by entry
        table = _one_by_one(streams, ids, entries)
    return table


_STREAM_CACHE: dict[str, tuple[str, bool]] = {}
_WITH_SYMBOL: Final = TICK_SCHEMA.append(pa.field("__symbol", pa.string()))


def _stream_symbol(stream: str) -> tuple[str, bool]:
    known = _STREAM_CACHE.get(stream)
    if known is None:
        known = _STREAM_CACHE[stream] = keys.stream_symbol(stream)
    return known


_TEXT_COLUMNS: Final = ("id", "price", "qty", "side", "T", "E", "recv", "src")


def _vectorized(
    streams: list[str], ids: list[str], entries: list[dict[str, str] | list[str]]
) -> pa.Table | None:
    """The fast path: parse whole columns with Arrow, apply the schema's rules as masks.
    Entries are grouped by layout (compact real, compact ghost, the older nine fields), each
    group parsed at once. ``None`` when a value does not parse the way Arrow reads it or an
    entry is in no known shape (then the slow path runs)."""
    groups: dict[str, list[int]] = {"real": [], "ghost": [], "legacy": []}
    field_name = tickschema.FIELD
    for i, (stream, entry) in enumerate(zip(streams, entries, strict=True)):
        if entry.__class__ is dict and len(entry) == 1 and field_name in entry:
            groups["ghost" if _stream_symbol(stream)[1] else "real"].append(i)
        else:
            groups["legacy"].append(i)
    tables: list[pa.Table] = []
    try:
        for kind, rows in groups.items():
            if not rows:
                continue
            text: dict[str, pa.Array] | None
            if kind == "legacy":
                text = _legacy_columns([entries[i] for i in rows])
            else:
                text = _compact_columns(
                    [entries[i][field_name] for i in rows],  # type: ignore[call-overload]
                    [ids[i] for i in rows],
                    ghost=kind == "ghost",
                )
            if text is None:
                return None
            tables.append(_tick_table([streams[i] for i in rows], [ids[i] for i in rows], text))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _legacy_columns(entries: list[dict[str, str] | list[str]]) -> dict[str, pa.Array]:
    """Text columns of nine-field entries (a list: the values in the fields' order)."""
    names = tickschema.LEGACY_FIELDS
    rows = [e if isinstance(e, list) else [e.get(name) for name in names] for e in entries]
    return {
        name: pa.array(values, pa.string())
        for name, values in zip(names, zip(*rows, strict=True), strict=True)
    }


def _nth(parts: pa.ListArray, width: int, count: int) -> list[pa.Array]:
    """The ``width`` columns of ``count`` lists of exactly ``width`` items each."""
    flat = pc.list_flatten(parts)
    return [flat.take(pa.array(np.arange(k, width * count, width))) for k in range(width)]


def _compact_columns(values: list[str], ids: list[str], ghost: bool) -> dict[str, pa.Array] | None:
    """Text columns of compact entries: the value's parts, and for a real tick the trade time
    and id from the entry id. ``None`` if a value has the wrong number of parts."""
    width = tickschema.GHOST_WIDTH if ghost else tickschema.REAL_WIDTH
    parts = pc.split_pattern(pa.array(values, pa.string()), tickschema.SEP)
    if not pc.all(pc.equal(pc.list_value_length(parts), width)).as_py():
        return None
    names = tickschema.GHOST_PARTS if ghost else tickschema.REAL_PARTS
    text = dict(zip(names, _nth(parts, width, len(values)), strict=True))
    if not ghost:
        halves = pc.split_pattern(pa.array(ids, pa.string()), "-", max_splits=1)
        if not pc.all(pc.equal(pc.list_value_length(halves), 2)).as_py():
            return None
        text["T"], text["id"] = _nth(halves, 2, len(ids))
    return text


def _tick_table(streams: list[str], ids: list[str], text: Mapping[str, pa.Array]) -> pa.Table:
    """Typed, validated rows (invalid ones filtered out) from text columns named as the
    nine-field layout's fields."""
    trade_ts = pc.cast(text["T"], pa.int64())
    event_ts = pc.cast(text["E"], pa.int64())
    trade_id = pc.cast(text["id"], pa.int64())
    price = pc.cast(text["price"], pa.float64())
    qty = pc.cast(text["qty"], pa.float64())
    recv_ms = pc.cast(text["recv"], pa.float64())
    recv_us = pc.cast(pc.round(pc.multiply(recv_ms, 1000.0)), pa.int64())
    side = text["side"]
    valid = pc.and_(pc.is_in(side, value_set=pa.array(["buy", "sell"])), pc.greater(price, 0.0))
    valid = pc.and_(valid, pc.greater_equal(qty, 0.0))
    valid = pc.and_(valid, pc.not_equal(price, math.inf))
    for name in _TEXT_COLUMNS:
        valid = pc.and_(valid, pc.is_valid(text[name]))
    valid = pc.fill_null(valid, False)
    named = [_stream_symbol(stream) for stream in streams]
    is_ghost = pa.array([ghost for _, ghost in named], pa.bool_())
    table = pa.Table.from_arrays(
        [
            trade_ts.cast(UTC_MS),
            pc.if_else(is_ghost, "ghost", text["src"]),
            trade_id,
            price,
            qty,
            side,
            event_ts.cast(UTC_MS),
            recv_us.cast(UTC_US),
            text["price"],
            text["qty"],
            pa.array(ids, pa.string()),
            pa.array([symbol for symbol, _ in named], pa.string()),
        ],
        schema=_WITH_SYMBOL,
    )
    return table.filter(valid)


def _one_by_one(
    streams: list[str], ids: list[str], entries: list[dict[str, str] | list[str]]
) -> pa.Table:
    """The slow path: :func:`spreadbus.bus.tickschema.decode` on each entry; what it refuses
    is dropped."""
    rows: list[dict[str, object]] = []
    for stream, entry_id, fields in zip(streams, ids, entries, strict=True):
        try:
            symbol, ghost = _stream_symbol(stream)
            entry = SpoolRecord(stream, entry_id, fields).as_dict()
            tick = tickschema.decode(entry, entry_id, symbol)
            recv_us = round(tick.recv_ts * 1000)
        except (CodecError, ValueError, OverflowError, TypeError, AttributeError):
            continue
        if not all(
            -(2**63) <= v < 2**63 for v in (tick.trade_id, tick.trade_ts, tick.event_ts, recv_us)
        ):
            continue
        rows.append(
            {
                "ts": tick.trade_ts,
                "venue": "ghost" if ghost else tick.source,
                "trade_id": tick.trade_id,
                "price": float(tick.price),
                "qty": float(tick.qty),
                "side": tick.side,
                "event_ts": tick.event_ts,
                "recv_ts": recv_us,
                "price_text": tick.price,
                "qty_text": tick.qty,
                "stream_id": entry_id,
                "__symbol": symbol,
            }
        )
    return pa.Table.from_pylist(rows, schema=_WITH_SYMBOL)


def _split(table: pa.Table) -> dict[tuple[str, str], pa.Table]:
    """Rows -> one sorted table per (symbol, UTC date), without the helper column."""
    if table.num_rows == 0:
        return {}
    symbols = table["__symbol"].to_numpy(zero_copy_only=False)
    days = np.floor_divide(table["ts"].cast(pa.int64()).to_numpy(), DAY_MS)
    table = table.drop_columns(["__symbol"])
    out: dict[tuple[str, str], pa.Table] = {}
    for symbol in np.unique(symbols):
        of_symbol = symbols == symbol
        for day in np.unique(days[of_symbol]):
            mask = of_symbol & (days == day)
            out[(str(symbol), day_text(int(day)))] = sort_ticks(table.filter(pa.array(mask)))
    return out


def join_candles(fields: Mapping[keys.CandleField, Sequence[Sample]]) -> list[CandleRow]:
    """Closed candles from the five candle series: only minutes present in all five (a rule
    may have closed a minute on one field a moment before another)."""
    values: dict[keys.CandleField, dict[int, float]] = {
        name: dict(fields.get(name, ())) for name in keys.CANDLE_FIELDS
    }
    common = set(values["open"])
    for name in keys.CANDLE_FIELDS[1:]:
        common &= set(values[name])
    return [
        (ts, *(values[name][ts] for name in keys.CANDLE_FIELDS))  # type: ignore[misc]
        for ts in sorted(common)
    ]


def revised_candles(
    rows: Sequence[CandleRow], after_ms: int, previous: Mapping[int, CandleRow] | None
) -> list[CandleRow]:
    """Which closed candles to write: every minute after the cursor ``after_ms``, and every
    earlier one whose values changed since the last look (``previous``: a late trade landed in
    a closed minute). On the first look (``previous`` is None) earlier minutes are taken as
    they are: they were archived before."""
    return [
        row
        for row in rows
        if row[0] > after_ms or (previous is not None and previous.get(row[0], row) != row)
    ]


def candle_tables(rows: Sequence[CandleRow]) -> dict[str, pa.Table]:
    """Candle rows (sorted by time) -> one table per UTC date."""
    by_date: dict[str, list[CandleRow]] = {}
    for row in rows:
        by_date.setdefault(date_of_ms(row[0]), []).append(row)
    out: dict[str, pa.Table] = {}
    for date, chunk in by_date.items():
        arrays = [
            pa.array([row[i] for row in chunk], type=f.type) for i, f in enumerate(CANDLE_SCHEMA)
        ]
        out[date] = pa.Table.from_arrays(arrays, schema=CANDLE_SCHEMA)
    return out


def settle_analytics(series: Mapping[str, Sequence[Sample]]) -> dict[str, list[Sample]]:
    """Hold back the newest second of a pair: the engine writes all metrics of a second
    together, so once any metric has a later sample, every metric of the earlier seconds is
    complete. What is held back is archived by a later batch (the cursor does not pass it)."""
    newest = max((samples[-1][0] for samples in series.values() if samples), default=None)
    if newest is None:
        return {}
    return {
        metric: [s for s in samples if s[0] < newest]
        for metric, samples in series.items()
        if any(s[0] < newest for s in samples)
    }


def analytics_tables(series: Mapping[str, Sequence[Sample]]) -> dict[str, pa.Table]:
    """Per-metric samples -> wide rows (one per second), one table per UTC date."""
    rows: dict[int, dict[str, float]] = {}
    for metric, samples in series.items():
        if metric not in ANALYTICS_METRICS:
            continue
        for ts, value in samples:
            rows.setdefault(ts, {})[metric] = value
    by_date: dict[str, list[int]] = {}
    for ts in sorted(rows):
        by_date.setdefault(date_of_ms(ts), []).append(ts)
    out: dict[str, pa.Table] = {}
    for date, stamps in by_date.items():
        arrays = [pa.array(stamps, type=UTC_MS)]
        arrays += [
            pa.array([rows[ts].get(metric) for ts in stamps], type=pa.float64())
            for metric in ANALYTICS_METRICS
        ]
        out[date] = pa.Table.from_arrays(arrays, schema=ANALYTICS_SCHEMA)
    return out


def sort_ticks(table: pa.Table) -> pa.Table:
    return table.sort_by([("ts", "ascending"), ("venue", "ascending"), ("trade_id", "ascending")])


def _keep_rows(table: pa.Table, keys_: list[str], which: str) -> pa.Table:
    """Rows of ``table`` unique on ``keys_``: the first (``min``) or last (``max``) of each."""
    if table.num_rows == 0:
        return table
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    grouped = (
        table.select(keys_)
        .append_column("__row", rows)
        .group_by(keys_, use_threads=False)
        .aggregate([("__row", which)])
    )
    keep = np.sort(grouped.column(f"__row_{which}").to_numpy())
    return table.take(pa.array(keep))


def merge_parts(dataset: Dataset, tables: Sequence[pa.Table]) -> pa.Table:
    """Combine the parts of one partition (oldest batch first) into one deduplicated table:

    - ticks: one row per (venue, stream id), i.e. per stream entry;
    - candles: one row per minute, the most recently written one wins;
    - analytics: one row per second, each metric's most recent non-null value.
    """
    schema = SCHEMAS[dataset]
    merged = pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])
    if dataset == "ticks":
        return sort_ticks(_keep_rows(merged, ["venue", "stream_id"], "min"))
    if dataset == "candles":
        return _keep_rows(merged, ["ts"], "max").sort_by("ts")
    frame = merged.to_pandas()
    combined = frame.groupby("ts", sort=True).last().reset_index()
    return pa.Table.from_pandas(
        combined, schema=schema, preserve_index=False
    ).replace_schema_metadata(None)
