"""The independent reference for candles in tests: pandas resampling of raw ticks, and the
candles as Redis holds them, side by side."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.connect import AsyncRedis


def candles_from_ticks(ticks: Sequence[Tick]) -> pd.DataFrame:
    """1-minute open/high/low/close/volume of ``ticks`` (arrival order = trade order), indexed
    by the minute's start in epoch ms."""
    frame = pd.DataFrame(
        {"price": [float(t.price) for t in ticks], "qty": [float(t.qty) for t in ticks]},
        index=pd.to_datetime([t.trade_ts for t in ticks], unit="ms"),
    )
    bars = minute_bars(frame)
    bars.index = pd.Index([int(ts.value // 1_000_000) for ts in bars.index])  # ns -> ms
    return bars


def minute_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """1-minute open/high/low/close/volume of a ``price``/``qty`` frame indexed by trade time
    in trade order; minutes without trades left out."""
    bars = frame.resample("1min").agg({"price": ["first", "max", "min", "last"], "qty": "sum"})
    bars.columns = ["open", "high", "low", "close", "volume"]
    return bars.dropna()


async def read_candles(client: AsyncRedis, symbol: str) -> pd.DataFrame:
    """Every candle of ``symbol`` in Redis, the one still open included (``LATEST``)."""
    columns = {}
    for field in keys.CANDLE_FIELDS:
        rows = await client.execute_command(
            "TS.RANGE", keys.candle_series(symbol, field), "-", "+", "LATEST"
        )
        columns[field] = {int(ts): float(v) for ts, v in rows}
    return pd.DataFrame(columns)
