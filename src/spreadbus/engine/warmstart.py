"""Warm start: a symbol's recent 1-second bars from history, so a (re)started engine has full
windows within seconds instead of after ``window`` seconds of live data.

The gateway keeps every trade's price in ``ts:price:{SYMBOL}`` (last price per millisecond,
one hour). ``TS.RANGE ... AGGREGATION last 1000`` turns it into exactly the engine's grid:
the last trade of each second, buckets aligned on the epoch second, only seconds with trades.
The range ends at the trade millisecond the engine resumes reading at (its cursor), so the
bars describe precisely the trades before the cursor; the trades of that last millisecond
that come after the cursor are read again from the stream, which is harmless because a bar
only keeps the last price (see :mod:`spreadbus.engine.grid`).

When the window reaches further back than the series (a window over an hour, or a Redis that
lost its data), the older part comes from the Archivist's Parquet files through
``spreadbus.archivist.reader``, imported only then and optional: without it, or on any error
reading it, the engine starts with what the series has.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pandas as pd
import redis.exceptions

from spreadbus.analytics import AnalyticsInputError, resample
from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis

Bars = list[tuple[int, float]]  # (epoch second, last price), ascending, traded seconds only


async def series_bars(client: AsyncRedis, symbol: str, from_ms: int, to_ms: int) -> Bars:
    """Per-second last prices of the price series in ``[from_ms, to_ms]``."""
    try:
        rows: Any = await client.execute_command(
            "TS.RANGE", keys.price_series(symbol), from_ms, to_ms, "AGGREGATION", "last", 1000
        )
    except redis.exceptions.ResponseError:
        return []  # no series yet
    return [(int(ts) // 1000, float(value)) for ts, value in rows]


async def newest_sample_ms(client: AsyncRedis, symbol: str, to_ms: int) -> int:
    """Time of the newest sample at or before ``to_ms`` (0 if none)."""
    try:
        rows: Any = await client.execute_command(
            "TS.REVRANGE", keys.price_series(symbol), 0, to_ms, "COUNT", 1
        )
    except redis.exceptions.ResponseError:
        return 0
    return int(rows[0][0]) if rows else 0


def archive_bars(data_dir: Path, symbol: str, from_ms: int, to_ms: int) -> Bars:
    """Per-second last real prices from the Parquet archive in ``[from_ms, to_ms)``; empty if
    there is no archive (or no archivist package)."""
    try:
        from spreadbus.archivist.layout import archive_root  # noqa: PLC0415 (optional)
        from spreadbus.archivist.reader import read_ticks  # noqa: PLC0415
    except ImportError:
        return []
    frame = read_ticks(archive_root(data_dir), symbol, from_ms, to_ms)
    frame = frame[frame["venue"] != "ghost"]
    if frame.empty:
        return []
    try:
        bars = resample(frame[["ts", "price", "qty"]], "1s")
    except AnalyticsInputError:
        return []
    traded = bars[bars["trades"] > 0]
    seconds = pd.DatetimeIndex(traded.index).as_unit("ms").asi8 // 1000
    return list(zip(seconds.tolist(), traded["close"].astype(float).tolist(), strict=True))


async def warm_bars(
    client: AsyncRedis,
    symbol: str,
    until_ms: int,
    span_s: int,
    data_dir: Path | None = None,
) -> tuple[Bars, int, str]:
    """The bars of the ``span_s`` seconds up to ``until_ms`` (inclusive), the trade time of
    the newest trade they hold, and where they came from (``series``, ``archive+series``,
    ``none``)."""
    from_ms = (until_ms // 1000 - span_s + 1) * 1000
    bars = await series_bars(client, symbol, from_ms, until_ms)
    source = "series" if bars else "none"
    first_ms = bars[0][0] * 1000 if bars else until_ms + 1
    if data_dir is not None and first_ms > from_ms + 1000:
        older: Bars = []
        with contextlib.suppress(Exception):  # the archive is a bonus, never a reason to fail
            older = await asyncio.to_thread(archive_bars, data_dir, symbol, from_ms, first_ms)
        if older:
            bars = older + bars
            source = "archive+series" if source == "series" else "archive"
    last_ms = await newest_sample_ms(client, symbol, until_ms) if bars else 0
    if bars and last_ms < bars[-1][0] * 1000:  # the newest bar came from the archive
        last_ms = bars[-1][0] * 1000
    return bars, last_ms, source
