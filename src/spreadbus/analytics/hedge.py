"""Static hedge ratios: ordinary least squares (batch and sliding-window) and robust regression.

The pair convention throughout spreadbus is ``y = alpha + beta * x + residual``: for the pair
``ETHUSDT/BTCUSDT``, ``y`` is ETH and ``x`` is BTC, so holding one unit of ``y`` against
``beta`` units of ``x`` leaves the residual (the spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from spreadbus.analytics._moments import ExactPairWindow, ratio
from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    FloatArray,
    as_pair,
    call_quietly,
    require_choice,
    require_finite_number,
    require_measurable,
    require_not_constant,
    require_window,
)

__all__ = ["HedgeFit", "RollingOLS", "ols_hedge", "robust_hedge"]


@dataclass(frozen=True, slots=True)
class HedgeFit:
    """One fitted hedge ``y = alpha + beta * x``.

    ``r2`` is statsmodels' ``rsquared`` (centred with an intercept, uncentred without);
    ``resid_std`` is the residual standard error ``sqrt(SSR / (n - k))`` with ``k`` fitted
    coefficients, i.e. ``sqrt(mse_resid)``; ``n`` is the number of points used.
    """

    alpha: float
    beta: float
    r2: float
    resid_std: float
    n: int


def ols_hedge(y: ArrayLike, x: ArrayLike, intercept: bool = True) -> HedgeFit:
    """Least-squares hedge of ``y`` on ``x``, equal to ``statsmodels.OLS``.

    Computed from centred data (two passes, after shifting by the first point) rather than
    through the normal equations on raw prices, so a BTC leg at 98,000 moving by cents does
    not cost the slope its significant digits.
    """
    k = 2 if intercept else 1
    y_arr, x_arr = as_pair(y, x, min_len=k + 1)
    n = y_arr.size
    if intercept:
        require_not_constant(x_arr, "x")
        require_not_constant(y_arr, "y")
        # shift by the first point (exact for nearby prices), then centre: deviations keep
        # their digits even when the prices agree to many of them
        x_shifted = x_arr - x_arr[0]
        y_shifted = y_arr - y_arr[0]
        x_dev = x_shifted - x_shifted.mean()
        y_dev = y_shifted - y_shifted.mean()
        beta = float(x_dev @ y_dev) / require_measurable(float(x_dev @ x_dev), "x")
        alpha = float(y_arr.mean()) - beta * float(x_arr.mean())
        residual = y_dev - beta * x_dev
        total = require_measurable(float(y_dev @ y_dev), "y")
    else:
        if not x_arr.any():
            raise AnalyticsInputError("x: is all zeros; a slope through the origin is undefined")
        if not y_arr.any():
            raise AnalyticsInputError("y: is all zeros; R-squared is undefined")
        beta = float(x_arr @ y_arr) / require_measurable(float(x_arr @ x_arr), "x")
        alpha = 0.0
        residual = y_arr - beta * x_arr
        total = require_measurable(float(y_arr @ y_arr), "y")
    ssr = float(residual @ residual)
    return HedgeFit(
        alpha=alpha,
        beta=beta,
        r2=1.0 - ssr / total,
        resid_std=math.sqrt(ssr / (n - k)),
        n=n,
    )


class RollingOLS:
    """OLS hedge (with intercept) over the last ``window`` points, O(1) per update.

    The window's sums are kept exactly as fixed-point integers (see ``_moments``): an update
    adds the new point and subtracts the oldest with no rounding at all, so after any sequence
    of updates the state is exactly that of the current window, with no drift to correct and
    no catastrophic cancellation on prices near 1e5. Each statistic is then one rounding of an
    exact ratio (a few ulps; R-squared and the residual sum of squares included), i.e. at
    least as accurate as the two-pass batch :func:`ols_hedge`.

    Until ``window`` points have arrived, ``fit`` uses all points so far (at least 3);
    ``ready`` says whether the window is full.
    """

    __slots__ = ("_window",)

    def __init__(self, window: int) -> None:
        self._window = ExactPairWindow(require_window(window, minimum=3))

    @property
    def window(self) -> int:
        return self._window.window

    @property
    def count(self) -> int:
        """Points currently in the window."""
        return self._window.count

    @property
    def ready(self) -> bool:
        return self._window.count == self._window.window

    def update(self, y: float, x: float) -> None:
        """Add one observation, dropping the oldest once the window is full."""
        try:
            self._window.push(float(x), float(y))
        except (OverflowError, ValueError):  # nan/inf, refused before a point is added
            raise AnalyticsInputError(
                f"update: y and x must be finite, got y={y!r}, x={x!r}"
            ) from None

    @property
    def fit(self) -> HedgeFit:
        """The hedge over the points in the window."""
        window = self._window
        n = window.count
        if n < 3:
            raise AnalyticsInputError(f"RollingOLS: too few points, needs at least 3, got {n}")
        cxx, cxy, cyy = window.centred("x", "y")
        beta = ratio(cxy, cxx)
        mean_x, mean_y = window.means()
        explained = cxy * cxy
        total = cxx * cyy
        # SSR = Syy - Sxy^2 / Sxx, from one exact integer difference: no cancellation
        ssr = ratio(total - explained, (n * cxx) << (2 * window.bits))
        return HedgeFit(
            alpha=mean_y - beta * mean_x,
            beta=beta,
            r2=ratio(explained, total),
            resid_std=math.sqrt(ssr / (n - 2)),
            n=n,
        )

    def refit(self) -> HedgeFit:
        """Rebuild the sums from the window's points and return the fit.

        The sums never drift, so this changes no number; it resets the fixed-point scale to
        what the current window needs, which keeps the integers (and so the update cost)
        small after a value with unusually fine bits (e.g. ~1e-12) has left the window.
        """
        self._window.recompute()
        return self.fit

    def window_arrays(self) -> tuple[FloatArray, FloatArray]:
        """The ``(y, x)`` points in the window, oldest first (a copy)."""
        xs, ys = self._window.arrays()
        return ys, xs


RobustMethod = Literal["huber", "theil_sen"]


def robust_hedge(
    y: ArrayLike, x: ArrayLike, method: RobustMethod = "huber", huber_t: float = 1.345
) -> HedgeFit:
    """Hedge that a few bad prints (a fat-finger trade, a stale bar) cannot drag.

    ``method="huber"``: iteratively reweighted least squares with Huber's T norm and a MAD
    scale (``statsmodels.RLM`` with ``HuberT(t=huber_t)``), 95% efficient on clean normal data.
    ``method="theil_sen"``: median of pairwise slopes (``scipy.stats.theilslopes``), breakdown
    point ~29%, but O(n^2) time and memory, so keep it to windows of a few thousand points.

    ``r2`` and ``resid_std`` are computed from the robust line's own residuals exactly as for
    OLS (``r2 = 1 - SSR/SST``, which can be below 0 because the line does not minimise SSR),
    so the three methods are comparable side by side.
    """
    require_choice(method, "method", ("huber", "theil_sen"))
    y_arr, x_arr = as_pair(y, x, min_len=3)
    require_not_constant(x_arr, "x")
    require_not_constant(y_arr, "y")
    x_mean = float(x_arr.mean())
    x_dev = x_arr - x_mean  # centring keeps the IRLS design well conditioned on raw prices
    if method == "huber":
        from statsmodels.robust.norms import HuberT  # noqa: PLC0415 (lazy: see package)
        from statsmodels.robust.robust_linear_model import RLM  # noqa: PLC0415

        t = require_finite_number(huber_t, "huber_t")
        if t <= 0:
            raise AnalyticsInputError(f"huber_t: must be > 0, got {t}")
        design = np.column_stack([np.ones_like(x_dev), x_dev])
        params = call_quietly(
            "robust_hedge(huber)",
            lambda: RLM(y_arr, design, M=HuberT(t=t)).fit().params,
        )
        centred_alpha, beta = float(params[0]), float(params[1])
    else:
        from scipy.stats import theilslopes  # noqa: PLC0415 (lazy: see package)

        result = call_quietly("robust_hedge(theil_sen)", lambda: theilslopes(y_arr, x_dev))
        centred_alpha, beta = float(result.intercept), float(result.slope)
    residual = y_arr - centred_alpha - beta * x_dev
    y_dev = y_arr - y_arr.mean()
    ssr = float(residual @ residual)
    n = y_arr.size
    return HedgeFit(
        alpha=centred_alpha - beta * x_mean,
        beta=beta,
        r2=1.0 - ssr / require_measurable(float(y_dev @ y_dev), "y"),
        resid_std=math.sqrt(ssr / (n - 2)),
        n=n,
    )
