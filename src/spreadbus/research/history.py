"""Live history for research: 1-minute closes of symbols from Redis (the 24 h candle series)
joined with the Parquet archive for older minutes.

The window ends at the newest candle among the symbols asked for (not the wall clock, so a
replay of old trades works the same) and spans ``hours``. Per symbol, minutes before the
first candle still in Redis come from the archive, the rest from Redis: each minute from
exactly one source. Bars of 5 minutes or 1 hour take the last 1-minute close of the bar.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import redis.exceptions

from spreadbus.analytics.resample import BAR_MILLISECONDS
from spreadbus.archivist.reader import read_candles
from spreadbus.bus import keys

MINUTE_MS: Final = 60_000
SCAN_COUNT: Final = 1000


class HistoryError(ValueError):
    """The history asked for does not exist; the message says what is missing."""


async def candle_symbols(client: Any) -> list[str]:
    """Every symbol with a 1-minute close series in Redis, sorted."""
    found: set[str] = set()
    async for key in client.scan_iter(match=keys.candle_series_pattern("close"), count=SCAN_COUNT):
        text = key.decode() if isinstance(key, bytes) else str(key)
        found.add(text[text.index("{") + 1 : text.index("}")])
    return sorted(found)


def _missing(reply: object) -> bool:
    return isinstance(reply, redis.exceptions.ResponseError) and "does not exist" in str(reply)


async def live_closes(
    client: Any, archive_dir: Path, symbols: list[str], hours: float, bar: str = "1m"
) -> pd.DataFrame:
    """Closes per bar (index: bar start, epoch ms; one column per symbol), over the bars
    where every symbol has a price (a quiet minute carries the last close forward)."""
    if bar not in ("1m", "5m", "1h"):
        raise HistoryError(f"live history has 1-minute candles: bar {bar!r} needs a dataset")
    names = [keys.candle_series(s, "close") for s in symbols]
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.execute_command("TS.GET", name)
        heads: list[Any] = await pipe.execute(raise_on_error=False)
    absent = [s for s, h in zip(symbols, heads, strict=True) if _missing(h) or not h]
    for reply in heads:
        if isinstance(reply, Exception) and not _missing(reply):
            raise reply
    if absent:
        raise HistoryError(f"no 1-minute candles for {', '.join(absent)}")
    end_ms = max(int(h[0]) for h in heads)
    start_ms = end_ms - int(hours * 3_600_000) + MINUTE_MS
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.execute_command("TS.RANGE", name, start_ms, end_ms)
        ranges: list[Any] = await pipe.execute()
    columns: dict[str, pd.Series] = {}
    for symbol, samples in zip(symbols, ranges, strict=True):
        recent = pd.Series(
            [float(v) for _, v in samples], index=[int(t) for t, _ in samples], dtype=float
        )
        first_live = int(recent.index[0]) if len(recent) else end_ms + 1
        if first_live > start_ms:
            old = await asyncio.to_thread(read_candles, archive_dir, symbol, start_ms, first_live)
            if len(old):
                stamps = pd.DatetimeIndex(old["ts"]).as_unit("ms").asi8
                archived = pd.Series(old["close"].to_numpy(dtype=float), index=stamps)
                recent = pd.concat([archived.dropna(), recent])
        columns[symbol] = recent
    closes = pd.DataFrame(columns).sort_index().ffill().dropna()
    if bar != "1m":
        bar_ms = BAR_MILLISECONDS[bar]
        closes = closes.groupby(closes.index // bar_ms * bar_ms).last()
    closes.index = closes.index.astype(np.int64)
    closes.index.name = "ts_ms"
    return closes
