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
starts seconds sooner. A process that fits on its hot path (the engine) calls
:func:`load_fitting_libraries` at start instead, so its first fit is not a second-long import.
"""

import importlib

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

# what the fitting functions import when first called (keep with their imports)
FITTING_MODULES = (
    "scipy.stats",
    "statsmodels.robust.robust_linear_model",
    "statsmodels.tsa.stattools",
    "statsmodels.tsa.statespace.sarimax",
    "statsmodels.tsa.vector_ar.vecm",
)


def load_fitting_libraries() -> None:
    """Import statsmodels and scipy now rather than inside the first fit (about 1.5 s)."""
    for name in FITTING_MODULES:
        importlib.import_module(name)


__all__ = [
    "CARRY_FIELDS",
    "FITTING_MODULES",
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
    "load_fitting_libraries",
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
