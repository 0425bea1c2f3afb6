"""A pair's analytics over a whole series of bars (a dataset): the engine's snapshot fields,
a Johansen panel and chart series, all computed by :mod:`spreadbus.analytics`.

The fields carry the names of ``state:analytics:{PAIR}`` (:mod:`spreadbus.engine.pairstate`)
and mean the same, with the whole series as the window:

- ``beta``/``alpha``/``r2``: the chosen hedge, ``ols``, ``huber``, ``theil_sen`` (fitted on at
  most :data:`THEIL_SEN_POINTS` evenly spaced bars: it costs O(n^2)) or ``kalman`` (its last
  filtered coefficients; ``r2`` of that final line over the series);
- ``kalman_beta``/``kalman_alpha``: the Kalman hedge's last coefficients, from the filter the
  backtest uses (normalised prices, started from the first ``min(n, 300)`` bars' OLS fit);
- ``spread_bar``/``zscore_bar``/``spread_std``: the last bar's spread ``y - alpha - beta x``
  and its z-score against the series' spread deviation (ddof=1); with ``kalman`` the spread is
  the filter's forecast error and the z-score its own (error over forecast deviation);
- ``adf_*``, ``half_life_ar1`` (bars), ``hurst``, ``var_95``/``cvar_95``, ``max_drawdown``,
  ``eg_*``: as the engine (one fixed lag); ``spread_vol``, ``sharpe_ann`` and ``sortino_ann``
  annualised for the bar length;
- ``half_life`` (bars) with ``half_life_lo``/``_hi`` and ``spread_noise_sd``: the engine's OU
  fit, over the last :data:`OU_POINTS` bars (a maximum-likelihood fit, too slow for a day
  of 1-second bars at once);
- ``corr``: correlation of the legs' simple returns; ``spread``/``zscore``/``last_price_*``:
  the last bar's.
"""

from __future__ import annotations

import contextlib
import math
from typing import Final, Literal

import numpy as np

from spreadbus.analytics import (
    AnalyticsInputError,
    HedgeFit,
    johansen,
    kalman_hedge,
    ols_hedge,
    robust_hedge,
)
from spreadbus.analytics.resample import BAR_MILLISECONDS, Rule
from spreadbus.engine.pairstate import (
    BAR_FIELDS,
    EG_FIELDS,
    LIVE_FIELDS,
    OU_FIELDS,
    SECONDS_PER_YEAR,
    STATS_FIELDS,
    cointegration_stats,
    ou_stats,
    window_stats,
)
from spreadbus.research.backtest import OU_POINTS, PERIODS_PER_YEAR, kalman_settings

Hedge = Literal["ols", "kalman", "huber", "theil_sen"]
HEDGES: Final[tuple[str, ...]] = ("ols", "kalman", "huber", "theil_sen")
THEIL_SEN_POINTS: Final = 2_000
KALMAN_WARMUP: Final = 300
CHART_POINTS: Final = 5_000
ANNUALISED: Final = ("spread_vol", "sharpe_ann", "sortino_ann")  # scale with sqrt(bars a year)
MIN_BARS: Final = 20


def _kalman(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(alpha, beta, spread, spread_std)`` per bar, in price units."""
    y_ref, x_ref = float(y[0]), float(x[0])
    y_n, x_n = y / y_ref, x / x_ref
    settings = kalman_settings(y_n, x_n, min(len(y), KALMAN_WARMUP))
    result = kalman_hedge(
        y_n,
        x_n,
        settings["delta"],  # type: ignore[arg-type]
        settings["obs_var"],  # type: ignore[arg-type]
        initial_state=settings["kalman_start"],  # type: ignore[arg-type]
        initial_cov=settings["kalman_cov"],  # type: ignore[arg-type]
    )
    return (
        result.alpha * y_ref,
        result.beta * y_ref / x_ref,
        result.spread * y_ref,
        result.spread_std * y_ref,
    )


def _fit(y: np.ndarray, x: np.ndarray, hedge: Hedge) -> HedgeFit:
    if hedge == "huber":
        return robust_hedge(y, x, "huber")
    if hedge == "theil_sen":
        step = max(1, math.ceil(len(y) / THEIL_SEN_POINTS))
        sub = robust_hedge(y[::step], x[::step], "theil_sen")
        return _line(y, x, sub.alpha, sub.beta)
    return ols_hedge(y, x)


def _line(y: np.ndarray, x: np.ndarray, alpha: float, beta: float) -> HedgeFit:
    """A given line's fit statistics over the whole series (as :func:`robust_hedge` does)."""
    residual = y - alpha - beta * x
    y_dev = y - y.mean()
    ssr = float(residual @ residual)
    return HedgeFit(
        alpha, beta, 1.0 - ssr / float(y_dev @ y_dev), math.sqrt(ssr / (len(y) - 2)), len(y)
    )


def pair_analytics(
    ts_ms: np.ndarray, y: np.ndarray, x: np.ndarray, bar: Rule, hedge: Hedge
) -> dict[str, object]:
    """Snapshot fields, Johansen panel and chart series of ``y`` on ``x`` (module docstring);
    :class:`AnalyticsInputError` when the series cannot support them."""
    if hedge not in HEDGES:
        raise AnalyticsInputError(f"hedge: must be one of {HEDGES}, got {hedge!r}")
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n = len(y)
    if n < MIN_BARS:
        raise AnalyticsInputError(f"too few bars: {n}, at least {MIN_BARS} needed")
    k_alpha, k_beta, k_spread, k_std = _kalman(y, x)
    if hedge == "kalman":
        fit = _line(y, x, float(k_alpha[-1]), float(k_beta[-1]))
        series_spread = k_spread
        series_z = k_spread / k_std
        spread_std = float(k_std[-1])
        beta_series = k_beta
    else:
        fit = _fit(y, x, hedge)
        series_spread = y - fit.alpha - fit.beta * x
        spread_std = float(np.std(series_spread, ddof=1))
        series_z = series_spread / spread_std if spread_std > 0 else np.full(n, np.nan)
        beta_series = np.full(n, fit.beta)
    returns_y, returns_x = y[1:] / y[:-1] - 1.0, x[1:] / x[:-1] - 1.0
    corr = math.nan
    if np.std(returns_y) > 0 and np.std(returns_x) > 0:
        corr = float(np.corrcoef(returns_y, returns_x)[0, 1])
    fields: dict[str, float | int] = {
        "beta": fit.beta,
        "alpha": fit.alpha,
        "r2": fit.r2,
        "kalman_beta": float(k_beta[-1]),
        "kalman_alpha": float(k_alpha[-1]),
        "corr": corr,
        "spread_bar": float(series_spread[-1]),
        "zscore_bar": float(series_z[-1]),
        "spread_std": spread_std,
    }
    stats = window_stats(y, x, fit.alpha, fit.beta)
    # window_stats annualises per second (the engine's bars); rescale to this bar length
    scale = math.sqrt(PERIODS_PER_YEAR[bar] / SECONDS_PER_YEAR)
    for name in ANNUALISED:
        stats[name] *= scale
    fields.update(stats)
    tail = slice(-OU_POINTS, None)  # the OU fit is a state-space ML fit: its latest bars
    fields.update(ou_stats(y[tail], x[tail], fit.alpha, fit.beta))
    fields.update(cointegration_stats(y, x))
    fields.update(
        spread=fields["spread_bar"],
        zscore=fields["zscore_bar"],
        last_price_y=float(y[-1]),
        last_price_x=float(x[-1]),
        n=n,
        window=n,
        bar_ms=BAR_MILLISECONDS[bar],
    )
    assert set((*BAR_FIELDS, *STATS_FIELDS, *OU_FIELDS, *EG_FIELDS, *LIVE_FIELDS)) <= set(fields)
    return {
        "fields": {k: _finite(v) for k, v in fields.items()},
        "johansen": _johansen(y, x),
        "series": _series(ts_ms, y, x, series_spread, series_z, beta_series),
    }


def _johansen(y: np.ndarray, x: np.ndarray) -> dict[str, object] | None:
    """Trace and max-eigenvalue statistics with their 90/95/99% critical values, and both
    cointegrating vectors (columns, for ``(y, x)``); None if the test cannot run."""
    with contextlib.suppress(AnalyticsInputError):
        result = johansen(np.column_stack([y, x]))
        return {
            "trace_stat": result.trace_stat.tolist(),
            "trace_crit": result.trace_crit.tolist(),
            "max_eig_stat": result.max_eig_stat.tolist(),
            "max_eig_crit": result.max_eig_crit.tolist(),
            "eigenvalues": result.eigenvalues.tolist(),
            "eigenvectors": result.eigenvectors.T.tolist(),
        }
    return None


def _series(ts_ms: np.ndarray, *columns: np.ndarray) -> dict[str, list[object]]:
    """Chart series, every ``step``-th bar (at most :data:`CHART_POINTS`), last bar included."""
    n = len(ts_ms)
    picks = np.unique(np.r_[np.arange(0, n, max(1, math.ceil(n / CHART_POINTS))), n - 1])
    names = ("y", "x", "spread", "zscore", "beta")
    out: dict[str, list[object]] = {"ts_ms": np.asarray(ts_ms)[picks].tolist()}
    for name, column in zip(names, columns, strict=True):
        out[name] = [_finite(float(v)) for v in np.asarray(column)[picks]]
    return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
