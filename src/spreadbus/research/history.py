"""Live history for research: closes of symbols from Redis joined with the Parquet archive
for older bars.

* 1-minute bars (and 5 minutes, 1 hour: the last 1-minute close of the bar) come from the
  24 h candle series. The window ends at the newest candle among the symbols asked for (not
  the wall clock, so a replay of old trades works the same) and spans ``hours``. Per symbol,
  minutes before the first candle still in Redis come from the archive, the rest from Redis:
  each minute from exactly one source.
* 1-second bars come from the raw price series (``ts:price``, last price per millisecond, one
  hour) with the archive's real ticks for older seconds, by the engine's own warm start
  (:func:`spreadbus.engine.warmstart.warm_bars`): the last trade of each second, seconds
  before the first one still in the series from the archive, the rest from the series. The
  window ends at the newest price among the symbols.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import redis.exceptions

from spreadbus.analytics.resample import BAR_MILLISECONDS
from spreadbus.archivist.layout import archive_root
from spreadbus.archivist.reader import read_candles
from spreadbus.bus import keys
from spreadbus.engine.warmstart import warm_bars

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
    if bar == "1s":
        return await _second_closes(client, archive_dir, symbols, hours)
    if bar not in ("1m", "5m", "1h"):
        raise HistoryError(f"live history has 1-second and 1-minute bars: not {bar!r}")
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


async def _second_closes(
    client: Any, archive_dir: Path, symbols: list[str], hours: float
) -> pd.DataFrame:
    """1-second closes over the ``hours`` up to the newest price among ``symbols``."""
    async with client.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.execute_command("TS.GET", keys.price_series(symbol))
        heads: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in heads:
        if isinstance(reply, Exception) and not _missing(reply):
            raise reply
    stamps = [int(h[0]) for h in heads if h and not isinstance(h, Exception)]
    if not stamps:
        raise HistoryError(f"no live prices for {', '.join(symbols)} (the last hour's series)")
    end_ms = max(stamps)
    # warm_bars reads <data-dir>/archive; archive_dir is that folder (archive_root)
    data_dir = archive_dir.parent if archive_root(archive_dir.parent) == archive_dir else None
    span_s = max(1, int(hours * 3600))
    columns: dict[str, pd.Series] = {}
    for symbol in symbols:
        bars, _, _ = await warm_bars(client, symbol, end_ms, span_s, data_dir)
        if not bars:
            raise HistoryError(f"no prices for {symbol} in the last {hours:g} h")
        seconds, prices = zip(*bars, strict=True)
        index = np.asarray(seconds, dtype=np.int64) * 1000
        columns[symbol] = pd.Series(np.asarray(prices, dtype=float), index=index)
    closes = pd.DataFrame(columns).sort_index().ffill().dropna()
    closes.index = closes.index.astype(np.int64)
    closes.index.name = "ts_ms"
    return closes
