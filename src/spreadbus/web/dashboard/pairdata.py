"""One pair's chart data for the chosen bar and look-back, as one aligned frame.

Sources, all through :mod:`spreadbus.web.read`: the legs' price bars (last trade per bar),
and the engine's per-bar series (OLS beta/alpha, spread, z-score, correlation, Kalman
beta/alpha). 1 s bars use the engine's 1 s series (1 h kept), 1 m bars their 1-minute
averages, 5 m bars the average of five of those. The Kalman spread is ``y - alpha_k -
beta_k x`` on the price bars and its z-score the library's rolling z
(:func:`spreadbus.analytics.zscore`) over the bar's window.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from spreadbus.analytics import AnalyticsInputError, zscore
from spreadbus.web import read

Bar = Literal["1s", "1m", "5m"]
Hedge = Literal["ols", "kalman"]
BAR_MS: Final[dict[str, int]] = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
MAX_MINUTES: Final[dict[str, int]] = {"1s": 60, "1m": 1440, "5m": 1440}
METRICS: Final = ("spread", "zscore", "corr", "beta", "alpha", "kalman_beta", "kalman_alpha")
COLUMNS: Final = ("y", "x", *METRICS, "k_spread", "k_zscore")


@dataclass(frozen=True)
class PairFrame:
    """Aligned columns (:data:`COLUMNS`) on the bar times ``ts`` (epoch ms, bar start)."""

    ts: list[int]
    columns: dict[str, np.ndarray[Any, np.dtype[np.float64]]]
    after_ms: int = -1  # bars up to here are context (a live update's window), not new

    def __len__(self) -> int:
        return len(self.ts)

    def after(self, after_ms: int) -> PairFrame:
        """The same bars, those up to ``after_ms`` marked as context (already on screen)."""
        return PairFrame(self.ts, self.columns, after_ms)

    def spread(self, hedge: Hedge) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.columns["k_spread" if hedge == "kalman" else "spread"]

    def z(self, hedge: Hedge) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self.columns["k_zscore" if hedge == "kalman" else "zscore"]


def z_window(bar: Bar, engine_window: int) -> int:
    """Bars in the rolling window of the Kalman z-score and the spread bands."""
    return {"1s": engine_window, "1m": 60, "5m": 48}[bar]


def _series(points: list[tuple[int, Any]] | None) -> pd.Series:
    if not points:
        return pd.Series(dtype=float)
    ts, values = zip(*points, strict=True)
    return pd.Series([float(v) for v in values], index=list(ts), dtype=float)


async def load(client: Any, pair: str, bar: Bar, minutes: int, engine_window: int) -> PairFrame:
    """The frame of the last ``minutes`` (capped to what the bar's sources keep)."""
    minutes = min(minutes, MAX_MINUTES[bar])
    y_sym, x_sym = pair.split("/")
    step: read.Step = "1s" if bar == "1s" else "1m"
    bucket = BAR_MS[bar]
    history, y_bars, x_bars = await asyncio.gather(
        read.history(client, pair, METRICS, minutes, step),
        read.price_bars(client, y_sym, minutes, bucket),
        read.price_bars(client, x_sym, minutes, bucket),
    )
    frame = pd.DataFrame({m: _series(history[m]) for m in METRICS})
    if bar == "5m" and len(frame):
        frame = frame.groupby(frame.index - frame.index % bucket).mean()
    prices = pd.DataFrame({"y": _series(y_bars), "x": _series(x_bars)})
    frame = prices.join(frame, how="outer").sort_index()
    if len(frame) and frame.index[0] < frame.index[-1] - minutes * 60_000:
        frame = frame[frame.index > frame.index[-1] - minutes * 60_000]
    frame["k_spread"] = frame["y"] - frame["kalman_alpha"] - frame["kalman_beta"] * frame["x"]
    frame["k_zscore"] = _rolling_z(frame["k_spread"].to_numpy(), z_window(bar, engine_window))
    return PairFrame(
        [int(t) for t in frame.index],
        {c: frame[c].to_numpy(dtype=float) for c in COLUMNS},
    )


def _rolling_z(values: np.ndarray[Any, np.dtype[np.float64]], window: int) -> np.ndarray[Any, Any]:
    """The library's rolling z over the finite tail (NaN where the window is not full)."""
    out = np.full(values.size, np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0:
        return out
    start = finite[0]
    tail = values[start:]
    if not np.isfinite(tail).all() or tail.size < max(window, 2):
        return out
    with contextlib.suppress(AnalyticsInputError):  # a flat window: no deviation
        out[start:] = zscore(tail, window).values
    return out
