"""Risk figures of a return series: volatility, historical VaR/CVaR, drawdown, Sharpe, Sortino.

Sign convention: VaR, CVaR and drawdown are reported as **positive fractions lost** (``var_95
= 0.02`` means "on 5% of periods the loss was 2% or more"), because that is how they are read
on a dashboard and compared with limits. A negative VaR means even the 5% tail made money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    FloatArray,
    as_float_array,
    require_finite_number,
    require_not_constant,
)

__all__ = ["RiskReport", "max_drawdown", "risk"]


@dataclass(frozen=True, slots=True)
class RiskReport:
    """Risk of one return series; see :func:`risk` for each definition."""

    vol_ann: float
    var_95: float
    cvar_95: float
    var_99: float
    cvar_99: float
    max_drawdown: float
    sharpe: float
    sortino: float


def max_drawdown(equity: ArrayLike) -> float:
    """Largest peak-to-trough fall of an equity curve, as a fraction of the peak (>= 0)."""
    curve = as_float_array(equity, "equity", min_len=1)
    if float(curve.min()) < 0.0:
        raise AnalyticsInputError("equity: must not go below zero for a relative drawdown")
    peaks = np.maximum.accumulate(curve)
    if float(peaks[0]) <= 0.0:
        raise AnalyticsInputError("equity: must start above zero")
    return float(np.max(1.0 - curve / peaks))


def _historical_tail(returns: FloatArray, level: float) -> tuple[float, float]:
    """(VaR, CVaR) at confidence ``level`` as positive losses; quantile by linear interpolation."""
    threshold = float(np.quantile(returns, 1.0 - level))
    tail = returns[returns <= threshold]
    return -threshold, -float(tail.mean())


def sharpe_ratio(returns: FloatArray, periods_per_year: float) -> float:
    """Annualised mean over sample std (ddof=1), zero risk-free rate; 0.0 for zero variance."""
    std = float(returns.std(ddof=1)) if returns.size > 1 else 0.0
    if std == 0.0:
        return 0.0
    return float(returns.mean()) / std * math.sqrt(periods_per_year)


def sortino_ratio(returns: FloatArray, periods_per_year: float) -> float:
    """Annualised mean over downside deviation ``sqrt(mean(min(r, 0)^2))`` (target 0).

    ``inf`` when the mean is positive and no period lost; 0.0 when nothing moved.
    """
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    mean = float(returns.mean())
    if downside == 0.0:
        return math.inf if mean > 0.0 else 0.0
    return mean / downside * math.sqrt(periods_per_year)


def risk(returns: ArrayLike, periods_per_year: float) -> RiskReport:
    """Risk report of simple per-period returns (``0.01`` = +1%).

    - ``vol_ann``: sample std (ddof=1) x sqrt(periods_per_year).
    - ``var_95`` / ``var_99``: historical VaR, minus the 5% / 1% quantile of the returns
      (numpy's linear interpolation).
    - ``cvar_95`` / ``cvar_99``: expected shortfall, minus the mean of the returns at or below
      that quantile.
    - ``max_drawdown``: of the compounded equity ``prod(1 + r)`` starting from 1.
    - ``sharpe``: annualised mean / std, zero risk-free rate.
    - ``sortino``: annualised mean / downside deviation (target 0); ``inf`` with no losses.

    Raises on fewer than 2 returns, a constant series (volatility zero, ratios undefined), and
    returns below -100%.
    """
    values = as_float_array(returns, "returns", min_len=2)
    require_not_constant(values, "returns")
    if float(values.min()) < -1.0:
        raise AnalyticsInputError(
            f"returns: a simple return below -100% is impossible (min {values.min()!r})"
        )
    periods = require_finite_number(periods_per_year, "periods_per_year")
    if periods <= 0:
        raise AnalyticsInputError(f"periods_per_year: must be > 0, got {periods}")
    std = float(values.std(ddof=1))
    if std == 0.0:
        raise AnalyticsInputError("returns: variation too small to measure (std underflows to 0)")
    var_95, cvar_95 = _historical_tail(values, 0.95)
    var_99, cvar_99 = _historical_tail(values, 0.99)
    equity = np.concatenate(([1.0], np.cumprod(1.0 + values)))
    return RiskReport(
        vol_ann=std * math.sqrt(periods),
        var_95=var_95,
        cvar_95=cvar_95,
        var_99=var_99,
        cvar_99=cvar_99,
        max_drawdown=max_drawdown(equity),
        sharpe=sharpe_ratio(values, periods),
        sortino=sortino_ratio(values, periods),
    )
