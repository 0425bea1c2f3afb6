"""Ticks to time bars (1s, 1m, 5m, 1h): open, high, low, close, volume per bar.

Bars are exact: ``open`` is the first trade of the bar and ``close`` the last *in the order
given* (the sort by timestamp is stable, so trades sharing one millisecond keep their
exchange order), ``high``/``low`` are the extreme trade prices and ``volume`` the sum of
quantities. Bars are labelled by their start time, in UTC, and are closed on the left
(``[start, start + bar)``), the same convention as the candles in Redis.

Empty-bar policy: the result has one row per bar from the first tick's bar to the last tick's
bar, with no gaps, so pair analytics can align two legs row by row. A bar without trades
carries the previous close forward: ``open = high = low = close = last`` = the previous close,
``volume = 0`` and ``trades = 0`` (so callers can tell a quiet bar from a traded one). No bar
is produced before the first tick (there is no price to carry).
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import pandas as pd

from spreadbus.analytics._validate import AnalyticsInputError, as_float_array, require_choice

__all__ = ["BAR_MILLISECONDS", "resample"]

Rule = Literal["1s", "1m", "5m", "1h"]
BAR_MILLISECONDS: Final[dict[str, int]] = {
    "1s": 1_000,
    "1m": 60_000,
    "5m": 300_000,
    "1h": 3_600_000,
}
COLUMNS: Final = ("open", "high", "low", "close", "volume", "last", "trades")
_MAX_BARS: Final = 10_000_000  # ~1 GB of output: a wrong timestamp unit, not a real request


def _epoch_ms(ts: pd.Series) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    """Timestamps as int64 epoch milliseconds; naive datetimes are taken to be UTC."""
    if ts.isna().any():
        raise AnalyticsInputError(
            f"ts: missing timestamps (first at row {int(ts.isna().argmax())})"
        )
    if pd.api.types.is_datetime64_any_dtype(ts.dtype):
        nanoseconds = np.asarray(
            pd.to_datetime(ts, utc=True).dt.as_unit("ns").astype("int64"), dtype=np.int64
        )
        return nanoseconds // 1_000_000  # floor: a trade at .9999 ms belongs to that ms
    if pd.api.types.is_integer_dtype(ts.dtype):
        return np.asarray(ts, dtype=np.int64)
    if pd.api.types.is_float_dtype(ts.dtype):
        values = np.asarray(ts, dtype=np.float64)
        if not np.array_equal(values, np.floor(values)):
            raise AnalyticsInputError("ts: epoch milliseconds must be whole numbers")
        return values.astype(np.int64)
    raise AnalyticsInputError(
        f"ts: expected epoch milliseconds (int) or datetimes, got dtype {ts.dtype}"
    )


def resample(ticks: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """Bars of ``rule`` (``"1s"``, ``"1m"``, ``"5m"``, ``"1h"``) from trades (module docstring).

    ``ticks`` has columns ``ts`` (epoch milliseconds or datetimes), ``price`` (> 0) and
    ``qty`` (>= 0). Returns a frame indexed by bar start (``DatetimeIndex``, UTC, named
    ``ts``) with float columns ``open, high, low, close, volume, last`` (``last`` = ``close``)
    and int ``trades``.
    """
    require_choice(rule, "rule", tuple(BAR_MILLISECONDS))
    if not isinstance(ticks, pd.DataFrame):
        raise AnalyticsInputError(f"ticks: expected a pandas DataFrame, got {type(ticks).__name__}")
    missing = [c for c in ("ts", "price", "qty") if c not in ticks.columns]
    if missing:
        raise AnalyticsInputError(f"ticks: missing column(s) {missing}")
    if len(ticks) == 0:
        raise AnalyticsInputError("ticks: too few points, needs at least 1 tick, got 0")
    price = as_float_array(ticks["price"], "price")
    qty = as_float_array(ticks["qty"], "qty")
    if float(price.min()) <= 0.0:
        raise AnalyticsInputError("price: trade prices must be > 0")
    if float(qty.min()) < 0.0:
        raise AnalyticsInputError("qty: trade quantities must be >= 0")
    stamps = _epoch_ms(ticks["ts"])

    bar_ms = BAR_MILLISECONDS[rule]
    order = np.argsort(stamps, kind="stable")
    bars = stamps[order] // bar_ms
    price = price[order]
    qty = qty[order]
    starts = np.flatnonzero(np.r_[True, bars[1:] != bars[:-1]])
    ends = np.r_[starts[1:], bars.size] - 1
    traded_bars = bars[starts]

    first, last = int(traded_bars[0]), int(traded_bars[-1])
    slots = traded_bars - first
    size = last - first + 1
    if size > _MAX_BARS:
        raise AnalyticsInputError(
            f"ticks: span of {size:,} {rule} bars exceeds {_MAX_BARS:,}; resample in pieces"
        )
    close = np.full(size, np.nan)
    close[slots] = price[ends]
    close = pd.Series(close).ffill().to_numpy()  # carry the last close through empty bars
    open_ = close.copy()
    high = close.copy()
    low = close.copy()
    open_[slots] = price[starts]
    high[slots] = np.maximum.reduceat(price, starts)
    low[slots] = np.minimum.reduceat(price, starts)
    volume = np.zeros(size)
    volume[slots] = np.add.reduceat(qty, starts)
    trades = np.zeros(size, dtype=np.int64)
    trades[slots] = ends - starts + 1

    index = pd.to_datetime((first + np.arange(size, dtype=np.int64)) * bar_ms, unit="ms", utc=True)
    return pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "last": close.copy(),
            "trades": trades,
        },
        index=pd.DatetimeIndex(index, name="ts"),
    )
