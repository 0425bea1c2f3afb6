"""Is the spread mean-reverting, and how fast: ADF, Engle-Granger, Johansen, half-life, Hurst.

The unit-root and cointegration tests are statsmodels' own, wrapped: the value added here is
input validation, named results, and turning statsmodels' "degenerate design" warnings (a
straight-line series, perfectly collinear legs) into an error instead of a number that looks
like overwhelming evidence. For the engine's per-second cadence on a few hundred points,
``adf(..., autolag=None, maxlag=k)`` runs one regression instead of one per candidate lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    FloatArray,
    as_float_array,
    as_float_matrix,
    as_pair,
    call_quietly,
    require_choice,
    require_measurable,
    require_not_constant,
    require_window,
)
from spreadbus.analytics.meanrev import half_life_of_phi

__all__ = [
    "ADFResult",
    "EngleGrangerResult",
    "JohansenResult",
    "adf",
    "engle_granger",
    "half_life_ar1",
    "hurst",
    "johansen",
]

ADF_MIN_POINTS = 10
Regression = Literal["c", "ct", "ctt", "n"]
AutoLag = Literal["AIC", "BIC", "t-stat"]


@dataclass(frozen=True, slots=True)
class ADFResult:
    """Augmented Dickey-Fuller test; ``crit_*`` are MacKinnon critical values at 1/5/10%."""

    stat: float
    pvalue: float
    usedlag: int
    nobs: int
    crit_1: float
    crit_5: float
    crit_10: float


class EngleGrangerResult(NamedTuple):
    """Engle-Granger test; unpacks as ``stat, pvalue, crit_1, crit_5, crit_10``."""

    stat: float
    pvalue: float
    crit_1: float
    crit_5: float
    crit_10: float


@dataclass(frozen=True, eq=False)
class JohansenResult:
    """Johansen test, statsmodels ``coint_johansen`` layout.

    ``trace_stat[r]`` / ``max_eig_stat[r]`` test "at most r cointegrating vectors";
    ``trace_crit`` and ``max_eig_crit`` have one row per ``r`` and columns for the **90%, 95%
    and 99%** levels (statsmodels' order); ``eigenvectors[:, j]`` is the j-th cointegrating
    vector, sorted by decreasing ``eigenvalues[j]``.
    """

    trace_stat: FloatArray
    max_eig_stat: FloatArray
    trace_crit: FloatArray
    max_eig_crit: FloatArray
    eigenvectors: FloatArray
    eigenvalues: FloatArray


def adf(
    series: ArrayLike,
    maxlag: int | None = None,
    regression: Regression = "c",
    autolag: AutoLag | None = "AIC",
) -> ADFResult:
    """Augmented Dickey-Fuller unit-root test, ``statsmodels.tsa.stattools.adfuller``.

    A low p-value rejects a unit root: the spread is stationary, i.e. tradeable. Needs at
    least 10 points; fewer carry no usable evidence either way.
    """
    values = as_float_array(series, "series", min_len=ADF_MIN_POINTS)
    require_not_constant(values, "series")
    require_choice(regression, "regression", ("c", "ct", "ctt", "n"))
    if autolag is not None:
        require_choice(autolag, "autolag", ("AIC", "BIC", "t-stat"))
    if maxlag is not None:
        require_window(maxlag, minimum=0, name="maxlag")
    from statsmodels.tsa.stattools import adfuller  # noqa: PLC0415 (lazy: see package)

    result: Any = call_quietly(
        "adf",
        lambda: adfuller(
            values, maxlag=maxlag, regression=regression, autolag=autolag, result_object=True
        ),
    )
    stat = float(result.statistic)
    if not math.isfinite(stat):
        raise AnalyticsInputError(
            "adf: the test regression fits perfectly (a deterministic series), no statistic"
        )
    crit = result.critical_values
    return ADFResult(
        stat=stat,
        pvalue=float(result.pvalue),
        usedlag=int(result.lags),
        nobs=int(result.nobs),
        crit_1=float(crit["1%"]),
        crit_5=float(crit["5%"]),
        crit_10=float(crit["10%"]),
    )


def engle_granger(
    y: ArrayLike,
    x: ArrayLike,
    trend: Literal["c", "ct", "ctt"] = "c",
    maxlag: int | None = None,
    autolag: Literal["aic", "bic", "t-stat"] | None = "aic",
) -> EngleGrangerResult:
    """Engle-Granger two-step cointegration test, ``statsmodels.tsa.stattools.coint``.

    ``trend="n"`` is not offered: statsmodels has no critical values for it and would
    return NaN for them. Perfectly collinear legs (``y`` an exact multiple of ``x``) raise:
    the residual is zero and statsmodels would report ``-inf``.
    """
    y_arr, x_arr = as_pair(y, x, min_len=ADF_MIN_POINTS)
    require_not_constant(y_arr, "y")
    require_not_constant(x_arr, "x")
    require_choice(trend, "trend", ("c", "ct", "ctt"))
    if autolag is not None:
        require_choice(autolag, "autolag", ("aic", "bic", "t-stat"))
    if maxlag is not None:
        require_window(maxlag, minimum=0, name="maxlag")
    from statsmodels.tsa.stattools import coint  # noqa: PLC0415 (lazy: see package)

    result: Any = call_quietly(
        "engle_granger",
        lambda: coint(y_arr, x_arr, trend=trend, maxlag=maxlag, autolag=autolag),
    )
    stat = float(result[0])
    if not math.isfinite(stat):
        raise AnalyticsInputError("engle_granger: degenerate input, the statistic is not finite")
    crit = np.asarray(result[2], dtype=np.float64)
    return EngleGrangerResult(
        stat=stat,
        pvalue=float(result[1]),
        crit_1=float(crit[0]),
        crit_5=float(crit[1]),
        crit_10=float(crit[2]),
    )


def johansen(prices_2d: ArrayLike, det_order: int = 0, k_ar_diff: int = 1) -> JohansenResult:
    """Johansen cointegration test, ``statsmodels.tsa.vector_ar.vecm.coint_johansen``.

    ``prices_2d`` is observations x series (2 to 12 series: the tabulated critical values stop
    at 12). ``det_order``: -1 no deterministic term, 0 constant, 1 linear trend.
    """
    if det_order not in (-1, 0, 1):
        raise AnalyticsInputError(f"det_order: must be -1, 0 or 1, got {det_order!r}")
    lags = require_window(k_ar_diff, minimum=0, name="k_ar_diff")
    matrix = as_float_matrix(
        prices_2d, "prices_2d", min_rows=ADF_MIN_POINTS + lags, min_cols=2, max_cols=12
    )
    from statsmodels.tsa.vector_ar.vecm import coint_johansen  # noqa: PLC0415 (lazy)

    result: Any = call_quietly("johansen", lambda: coint_johansen(matrix, det_order, lags))
    fields = {
        "trace_stat": result.lr1,
        "max_eig_stat": result.lr2,
        "trace_crit": result.cvt,
        "max_eig_crit": result.cvm,
        "eigenvectors": result.evec,
        "eigenvalues": result.eig,
    }
    arrays = {name: np.array(value, dtype=np.float64) for name, value in fields.items()}
    for name, value in arrays.items():
        if not np.isfinite(value).all():
            raise AnalyticsInputError(f"johansen: degenerate input, {name} is not finite")
    return JohansenResult(**arrays)


def half_life_ar1(spread: ArrayLike) -> float:
    """Half-life of mean reversion in bars, from the AR(1) fit ``s_t = c + phi s_{t-1} + e``.

    Biased short when the spread carries observation noise (last trades, tick rounding): see
    :func:`spreadbus.analytics.ou_fit` for the estimate to show; this one is kept to compare.

    Fitted as ``diff(s) = c + b s_{t-1}`` by OLS (``phi = 1 + b``); for an Ornstein-Uhlenbeck
    process sampled every bar ``phi = exp(-theta)``, so the half-life is ``-ln 2 / ln phi``
    exactly, rather than the small-``theta`` approximation ``-ln 2 / b``.

    Returns ``inf`` when ``phi >= 1`` (no mean reversion: a random walk or explosive), and
    ``0.0`` when ``phi <= 0`` (the spread overshoots its mean within one bar). On a random
    walk the estimate of ``phi`` is biased below 1 (the Dickey-Fuller bias), so a finite but
    long half-life comes out: read it together with :func:`adf`.
    """
    values = as_float_array(spread, "spread", min_len=3)
    require_not_constant(values, "spread")
    lagged = values[:-1]
    if float(np.ptp(lagged)) == 0.0:
        raise AnalyticsInputError("spread: constant except for its last value")
    change = np.diff(values)
    lagged_dev = lagged - lagged.mean()
    spread_squares = require_measurable(float(lagged_dev @ lagged_dev), "spread")
    slope = float(lagged_dev @ (change - change.mean())) / spread_squares
    return half_life_of_phi(1.0 + slope)


def hurst(series: ArrayLike, max_lag: int | None = None) -> float:
    """Hurst exponent by the scaling of lagged differences (a variogram estimator).

    For lags ``tau = 2 .. max_lag`` (log-spaced, at most 20 of them), the standard deviation of
    ``x[t + tau] - x[t]`` grows like ``tau ** H``; ``H`` is the least-squares slope of
    ``log std`` on ``log tau``. Apply it to *levels* (a price or a spread), not to returns:
    ``H ~ 0.5`` random walk, ``H < 0.5`` mean-reverting, ``H > 0.5`` trending. Chosen over
    rescaled-range (R/S) analysis because R/S is biased upwards on the short windows the
    engine uses. ``max_lag`` defaults to ``min(100, n // 4)``.
    """
    values = as_float_array(series, "series", min_len=20)
    require_not_constant(values, "series")
    n = values.size
    top = min(100, n // 4) if max_lag is None else require_window(max_lag, minimum=3)
    if top >= n:
        raise AnalyticsInputError(f"max_lag: must be below the series length {n}, got {top}")
    lags = np.unique(np.geomspace(2, top, num=min(20, top - 1)).round().astype(np.int64))
    spreads = np.array([float(np.std(values[lag:] - values[:-lag])) for lag in lags])
    if not (spreads > 0).all():
        raise AnalyticsInputError(
            "series: some lagged differences are all zero (a periodic or stepwise series)"
        )
    slope = np.polyfit(np.log(lags.astype(np.float64)), np.log(spreads), 1)[0]
    return float(slope)
