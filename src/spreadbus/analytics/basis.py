"""Basis between the real venue and the ghost venue, in basis points.

``basis_bps = (ghost - real) / real * 1e4``: positive when the ghost venue trades rich.

Matching: the two venues never print at the same instant, so each ghost observation is paired
with the **latest real observation at or before it** (an as-of join, ``direction="backward"``):
the real price a trader watching both venues would have known when the ghost price appeared.
Using a later real price would leak the future into the basis. Ghost observations before the
first real one, or further than ``tolerance_ms`` after the matched real one, are dropped.
Equal timestamps keep their input order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    as_float_array,
    as_pair,
    require_positive,
    require_window,
)

__all__ = ["arbitrage_basis"]


def _as_frame(series: pd.Series, name: str) -> tuple[pd.DataFrame, int]:
    """Prices keyed by int64 time, sorted stably; also how many key units make 1 ms."""
    prices = as_float_array(series, name, min_len=1)
    require_positive(prices, name)
    index = series.index
    if isinstance(index, pd.DatetimeIndex):
        stamps = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        keys = np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64)
        units_per_ms = 1_000_000
    elif pd.api.types.is_integer_dtype(index.dtype):
        keys = np.asarray(index, dtype=np.int64)
        units_per_ms = 1
    else:
        raise AnalyticsInputError(
            f"{name}: index must be datetimes or epoch milliseconds, got dtype {index.dtype}"
        )
    frame = pd.DataFrame({"key": keys, "price": prices})
    return frame.sort_values("key", kind="stable"), units_per_ms


def arbitrage_basis(
    real: pd.Series | ArrayLike, ghost: pd.Series | ArrayLike, tolerance_ms: int | None = None
) -> pd.Series:
    """Basis of ``ghost`` over ``real`` in bps at matched times (module docstring).

    Pass two pandas Series indexed by time (``DatetimeIndex``, naive = UTC, or int epoch
    milliseconds) for the as-of match; the result is indexed by the matched ghost times.
    Pass two plain arrays of equal length for prices already matched pairwise; the result then
    has a ``RangeIndex``. The Series is named ``basis_bps``.
    """
    if isinstance(real, pd.Series) and isinstance(ghost, pd.Series):
        real_frame, real_units = _as_frame(real, "real")
        ghost_frame, ghost_units = _as_frame(ghost, "ghost")
        if real_units != ghost_units:
            raise AnalyticsInputError(
                "real, ghost: both indexes must be datetimes, or both epoch milliseconds"
            )
        tolerance = None
        if tolerance_ms is not None:
            tolerance_ms = require_window(tolerance_ms, minimum=0, name="tolerance_ms")
            tolerance = tolerance_ms * ghost_units
        matched = pd.merge_asof(
            ghost_frame,
            real_frame,
            on="key",
            direction="backward",
            suffixes=("_ghost", "_real"),
            tolerance=tolerance,
        ).dropna(subset=["price_real"])
        if matched.empty:
            raise AnalyticsInputError(
                "ghost: no ghost observation has a real observation at or before it"
                + ("" if tolerance_ms is None else f" within {tolerance_ms} ms")
            )
        ghost_prices = matched["price_ghost"].to_numpy(dtype=np.float64)
        real_prices = matched["price_real"].to_numpy(dtype=np.float64)
        keys = matched["key"].to_numpy(dtype=np.int64)
        index: pd.Index = (
            pd.DatetimeIndex(pd.to_datetime(keys, unit="ns", utc=True), name=ghost.index.name)
            if ghost_units > 1
            else pd.Index(keys, name=ghost.index.name)
        )
    elif isinstance(real, pd.Series) or isinstance(ghost, pd.Series):
        raise AnalyticsInputError(
            "real, ghost: pass two time-indexed Series or two plain arrays, not one of each"
        )
    else:
        real_prices, ghost_prices = as_pair(real, ghost, min_len=1, names=("real", "ghost"))
        require_positive(real_prices, "real")
        require_positive(ghost_prices, "ghost")
        index = pd.RangeIndex(real_prices.size)
    return pd.Series(
        (ghost_prices - real_prices) / real_prices * 1e4, index=index, name="basis_bps"
    )
