"""The spread, its rolling z-score, and the rolling correlation of the two legs' returns.

Batch forms (``zscore``, ``rolling_corr``) return full-length arrays aligned with the input:
the first entries, before a full window exists, are NaN, as in pandas' ``rolling``. A window
without variation (a flat spread in an idle market) also gives NaN at that position, because
no z-score or correlation exists there; the *last* value, which callers act on, is returned
as a number or raises ``AnalyticsInputError``. Streaming forms (``RollingZ``, ``RollingCorr``)
hold the window and update in O(1); their ``z`` / ``corr`` equal the batch forms' last value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from spreadbus.analytics._moments import ExactPairWindow, ExactWindow, correlation
from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    FloatArray,
    as_float_array,
    as_pair,
    require_choice,
    require_finite_number,
    require_positive,
    require_window,
)

__all__ = ["RollingCorr", "RollingSeries", "RollingZ", "rolling_corr", "spread", "zscore"]

CorrOn = Literal["returns", "levels"]

# Bound the (points x window) temporaries of the batch forms to ~8 MB.
_CHUNK_ELEMENTS = 1_000_000


@dataclass(frozen=True, eq=False)
class RollingSeries:
    """A rolling statistic aligned with its input (NaN where undefined) and its last value."""

    values: FloatArray
    last: float


def spread(y: ArrayLike, x: ArrayLike, beta: ArrayLike, alpha: ArrayLike = 0.0) -> FloatArray:
    """``y - alpha - beta * x``; ``beta`` and ``alpha`` are scalars or per-point arrays (Kalman)."""
    y_arr, x_arr = as_pair(y, x, min_len=1)
    coefficients = []
    for name, value in (("beta", beta), ("alpha", alpha)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise AnalyticsInputError(f"{name}: must be a number or an array of numbers") from None
        if array.ndim == 0:
            require_finite_number(float(array), name)
        else:
            array = as_float_array(array, name)
            if array.size != y_arr.size:
                raise AnalyticsInputError(
                    f"{name}: mismatched length ({array.size}, the series have {y_arr.size})"
                )
        coefficients.append(array)
    beta_arr, alpha_arr = coefficients
    result: FloatArray = y_arr - alpha_arr - beta_arr * x_arr
    return result


def _rolling_z(values: FloatArray, window: int) -> FloatArray:
    """z-score of each window's last value (ddof=1), for ``len - window + 1`` windows.

    Two passes per window on values shifted by the window's first element: nearby prices
    subtract exactly (Sterbenz), so a window whose values agree to many digits keeps its
    deviations exact instead of losing them to the rounding of a mean at the price level.
    """
    windows = sliding_window_view(values, window)
    z = np.empty(windows.shape[0])
    step = max(1, _CHUNK_ELEMENTS // window)
    for start in range(0, windows.shape[0], step):
        block = windows[start : start + step]
        shifted = block - block[:, :1]
        centred = shifted - shifted.mean(axis=1)[:, None]
        std = np.sqrt((centred * centred).sum(axis=1) / (window - 1))
        # flat windows (test the range: a mean can be an ulp off) and windows whose
        # variation underflows have no z-score
        undefined = (np.ptp(block, axis=1) == 0.0) | (std == 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            block_z = centred[:, -1] / std
        block_z[undefined] = np.nan
        z[start : start + step] = block_z
    return z


def zscore(series: ArrayLike, window: int) -> RollingSeries:
    """Rolling z-score ``(s_t - mean) / std`` over the ``window`` points ending at ``t``.

    The window includes ``s_t`` itself and uses the sample std (ddof=1), like pandas'
    ``(s - s.rolling(w).mean()) / s.rolling(w).std()``. Raises if the last window is flat.
    """
    window = require_window(window, minimum=2)
    values = as_float_array(series, "series", min_len=window)
    z = np.full(values.size, np.nan)
    z[window - 1 :] = _rolling_z(values, window)
    last = float(z[-1])
    if math.isnan(last):
        raise AnalyticsInputError(f"series: the last {window} values are constant")
    return RollingSeries(values=z, last=last)


class RollingZ:
    """Streaming :func:`zscore`: push values, read the z-score of the latest in O(1).

    Sums are kept exactly (see ``_moments``), so a flat window is detected exactly and the
    z-score is correct to a couple of ulps however long the stream has run.
    """

    __slots__ = ("_push", "_window")

    def __init__(self, window: int) -> None:
        self._window = ExactWindow(require_window(window, minimum=2))
        self._push = self._window.push

    @property
    def window(self) -> int:
        return self._window.window

    @property
    def count(self) -> int:
        return self._window.count

    @property
    def ready(self) -> bool:
        return self._window.count == self._window.window

    def update(self, value: float) -> None:
        try:
            self._push(float(value))
        except (OverflowError, ValueError):  # nan/inf, refused before any state changes
            raise AnalyticsInputError(f"update: value must be finite, got {value!r}") from None

    def _require_full(self) -> None:
        if self._window.count < self._window.window:
            raise AnalyticsInputError(
                f"RollingZ: window not full yet ({self._window.count} of "
                f"{self._window.window} values)"
            )

    @property
    def mean(self) -> float:
        self._require_full()
        return self._window.mean()

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1) of the window; raises if it is flat."""
        self._require_full()
        return self._window.std("RollingZ")

    @property
    def z(self) -> float:
        """z-score of the latest value against the window that includes it."""
        window = self._window
        if window.count < window.window:
            self._require_full()  # raises with the message
        return window.zscore_of_latest("RollingZ")

    def refit(self) -> None:
        """Rebuild the sums at the smallest fixed-point scale the window needs (same numbers)."""
        self._window.recompute()


def _returns(prices: FloatArray) -> FloatArray:
    result: FloatArray = prices[1:] / prices[:-1] - 1.0
    return result


def rolling_corr(a: ArrayLike, b: ArrayLike, window: int, on: CorrOn = "returns") -> RollingSeries:
    """Rolling Pearson correlation of two legs over ``window`` observations.

    ``on="returns"`` (the default, and what a pairs trader means by "correlation") uses simple
    returns ``p_t / p_{t-1} - 1``, so ``window`` returns need ``window + 1`` prices and the
    first ``window`` entries are NaN; it equals pandas'
    ``a.pct_change().rolling(window).corr(b.pct_change())``. ``on="levels"`` correlates the
    prices themselves (trending prices correlate spuriously; offered for comparison only).
    """
    require_choice(on, "on", ("returns", "levels"))
    window = require_window(window, minimum=2)
    extra = 1 if on == "returns" else 0
    a_arr, b_arr = as_pair(a, b, min_len=window + extra, names=("a", "b"))
    if on == "returns":
        require_positive(a_arr, "a")
        require_positive(b_arr, "b")
        a_arr, b_arr = _returns(a_arr), _returns(b_arr)
    a_windows = sliding_window_view(a_arr, window)
    b_windows = sliding_window_view(b_arr, window)
    corr = np.empty(a_windows.shape[0])
    step = max(1, _CHUNK_ELEMENTS // window)
    for start in range(0, a_windows.shape[0], step):
        a_block = a_windows[start : start + step]
        b_block = b_windows[start : start + step]
        a_shifted = a_block - a_block[:, :1]  # exact for nearby values (see _rolling_z)
        b_shifted = b_block - b_block[:, :1]
        a_dev = a_shifted - a_shifted.mean(axis=1)[:, None]
        b_dev = b_shifted - b_shifted.mean(axis=1)[:, None]
        saa = (a_dev * a_dev).sum(axis=1)
        sbb = (b_dev * b_dev).sum(axis=1)
        sab = (a_dev * b_dev).sum(axis=1)
        # flat, or so little variation that the sums of squares underflow: undefined
        flat = (np.ptp(a_block, axis=1) == 0.0) | (np.ptp(b_block, axis=1) == 0.0)
        flat |= (saa == 0.0) | (sbb == 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            block_corr = np.clip(sab / (np.sqrt(saa) * np.sqrt(sbb)), -1.0, 1.0)
        block_corr[flat] = np.nan
        corr[start : start + step] = block_corr
    values = np.full(a_arr.size + extra, np.nan)
    values[window - 1 + extra :] = corr
    last = float(values[-1])
    if math.isnan(last):
        raise AnalyticsInputError(f"a or b: constant over the last {window} {on}")
    return RollingSeries(values=values, last=last)


class RollingCorr:
    """Streaming :func:`rolling_corr`: push both legs' prices, read the correlation in O(1).

    Exact sums as in :class:`RollingZ`; the correlation comes from one exact integer ratio.
    """

    __slots__ = ("_on", "_previous", "_window")

    def __init__(self, window: int, on: CorrOn = "returns") -> None:
        self._window = ExactPairWindow(require_window(window, minimum=2))
        self._on = require_choice(on, "on", ("returns", "levels"))
        self._previous: tuple[float, float] | None = None

    @property
    def window(self) -> int:
        return self._window.window

    @property
    def ready(self) -> bool:
        return self._window.count == self._window.window

    def update(self, a: float, b: float) -> None:
        """Add one price of each leg (sampled at the same time)."""
        if not (math.isfinite(a) and math.isfinite(b)):
            raise AnalyticsInputError(f"update: a and b must be finite, got a={a!r}, b={b!r}")
        a = float(a)
        b = float(b)
        if self._on == "levels":
            self._window.push(a, b)
            return
        if a <= 0.0 or b <= 0.0:
            raise AnalyticsInputError(f"update: prices must be > 0, got a={a!r}, b={b!r}")
        previous = self._previous
        self._previous = (a, b)
        if previous is not None:
            self._window.push(a / previous[0] - 1.0, b / previous[1] - 1.0)

    @property
    def count(self) -> int:
        """Points (returns, or level pairs) in the window so far."""
        return self._window.count

    def corr_so_far(self) -> float:
        """Correlation over the points pushed so far, full window or not (at least 3): the
        warm-up value; raises with fewer points or a flat leg."""
        if self._window.count < 3:
            raise AnalyticsInputError(
                f"RollingCorr: {self._window.count} {self._on} so far, need at least 3"
            )
        return correlation(*self._window.centred("a", "b"))

    @property
    def corr(self) -> float:
        """Correlation over the full window; raises before it is full or if a leg is flat."""
        window = self._window
        if window.count < window.window:
            raise AnalyticsInputError(
                f"RollingCorr: window not full yet ({window.count} of {window.window} {self._on})"
            )
        return correlation(*window.centred("a", "b"))

    def refit(self) -> None:
        """Rebuild the sums at the smallest fixed-point scale the window needs (same numbers)."""
        self._window.recompute()
