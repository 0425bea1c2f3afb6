"""Pairs-trading statistics: pure functions and small streaming state objects.

No Redis, no clock, no I/O: the engine, the dashboard's offline mode and a notebook all call
the same code, and every statistic is checked against statsmodels / numpy / scipy in
``tests/analytics``. Arrays go in (numpy or pandas), small frozen dataclasses come out.

Input that cannot support a statistic (too few points, NaN/inf, a constant series, mismatched
lengths, a window not yet full) raises :class:`AnalyticsInputError`, a ``ValueError`` whose
message names the problem; nothing returns a silent NaN where a number is claimed.

Streaming forms for the engine's per-bar loop, each O(1) per update:

- :class:`RollingOLS` (``update(y, x)``, ``fit``, ``refit()``): the rolling hedge.
- :class:`KalmanHedge` (``update(y, x) -> KalmanState``): the dynamic hedge.
- :class:`RollingZ` (``update(spread)``, ``z``): the z-score of the spread.
- :class:`RollingCorr` (``update(price_a, price_b)``, ``corr``): correlation of returns.

Window-level tests (``adf``, ``ou_fit``, ``half_life_ar1``, ``hurst``) take the window as an
array. ``ou_fit`` is the half-life to show (robust to the noise of last-trade bars, with an
interval); ``half_life_ar1`` is the plain AR(1) one, kept to compare (``half_life`` is its old
name, still used by ``spreadbus.research``).

statsmodels and scipy are imported by the functions that call them, not at import: importing
this package costs numpy and pandas only, so a process that never fits (the web, the CLI)
starts seconds sooner.
"""

from spreadbus.analytics._validate import AnalyticsInputError, ArrayLike, FloatArray
from spreadbus.analytics.backtest import BacktestResult, Trade, backtest
from spreadbus.analytics.basis import arbitrage_basis
from spreadbus.analytics.carry import CARRY_FIELDS, LegFunding, carry
from spreadbus.analytics.hedge import HedgeFit, RollingOLS, ols_hedge, robust_hedge
from spreadbus.analytics.kalman import KalmanHedge, KalmanResult, KalmanState, kalman_hedge
from spreadbus.analytics.meanrev import OUFit, half_life_of_phi, ou_fit
from spreadbus.analytics.resample import resample
from spreadbus.analytics.risk import RiskReport, max_drawdown, risk
from spreadbus.analytics.spread import (
    RollingCorr,
    RollingSeries,
    RollingZ,
    rolling_corr,
    spread,
    zscore,
)
from spreadbus.analytics.stationarity import (
    ADFResult,
    EngleGrangerResult,
    JohansenResult,
    adf,
    engle_granger,
    half_life_ar1,
    hurst,
    johansen,
)

half_life = half_life_ar1  # the old name: research/ still calls it (see its owners' issue)

__all__ = [
    "CARRY_FIELDS",
    "ADFResult",
    "AnalyticsInputError",
    "ArrayLike",
    "BacktestResult",
    "EngleGrangerResult",
    "FloatArray",
    "HedgeFit",
    "JohansenResult",
    "KalmanHedge",
    "KalmanResult",
    "KalmanState",
    "LegFunding",
    "OUFit",
    "RiskReport",
    "RollingCorr",
    "RollingOLS",
    "RollingSeries",
    "RollingZ",
    "Trade",
    "adf",
    "arbitrage_basis",
    "backtest",
    "carry",
    "engle_granger",
    "half_life",
    "half_life_ar1",
    "half_life_of_phi",
    "hurst",
    "johansen",
    "kalman_hedge",
    "max_drawdown",
    "ols_hedge",
    "ou_fit",
    "resample",
    "risk",
    "robust_hedge",
    "rolling_corr",
    "spread",
    "zscore",
]
