"""Bad input fails loudly with one ValueError naming the problem; good input never gives NaN."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from spreadbus import analytics as an

from ._data import PairSpec, pair_specs

NAN = math.nan
WALK = list(np.cumsum(np.random.default_rng(0).normal(size=60)) + 100.0)
OTHER = list(np.cumsum(np.random.default_rng(1).normal(size=60)) + 50.0)
WITH_NAN = [*WALK[:30], NAN, *WALK[31:]]
FLAT = [7.0] * 60
NO_TICKS: dict[str, list[float]] = {"ts": [], "price": [], "qty": []}


def _stream(factory: Callable[[], Any], *updates: tuple[float, ...]) -> Callable[[], Any]:
    def run() -> Any:
        state = factory()
        for update in updates:
            state.update(*update)
        return state

    return run


BAD_INPUT: list[tuple[str, Callable[[], Any], str]] = [
    # too few points
    ("ols_hedge", lambda: an.ols_hedge([1.0, 2.0], [3.0, 4.0]), "y: too few points"),
    ("robust_hedge", lambda: an.robust_hedge([1.0, 2.0], [3.0, 4.0]), "y: too few points"),
    ("adf", lambda: an.adf(WALK[:5]), "series: too few points"),
    ("engle_granger", lambda: an.engle_granger(WALK[:5], OTHER[:5]), "y: too few points"),
    ("johansen", lambda: an.johansen(np.c_[WALK[:5], OTHER[:5]]), "too few points"),
    ("half_life", lambda: an.half_life([1.0, 2.0]), "spread: too few points"),
    ("hurst", lambda: an.hurst(WALK[:10]), "series: too few points"),
    ("zscore", lambda: an.zscore(WALK[:5], 10), "series: too few points"),
    ("rolling_corr", lambda: an.rolling_corr(WALK[:10], OTHER[:10], 10), "a: too few points"),
    ("risk", lambda: an.risk([0.01], 252), "returns: too few points"),
    ("backtest", lambda: an.backtest(WALK, OTHER, window=59), "y: too few points"),
    ("kalman_hedge", lambda: an.kalman_hedge([], []), "y: too few points"),
    ("resample", lambda: an.resample(pd.DataFrame(NO_TICKS), "1m"), "needs at least 1 tick"),
    ("RollingZ.z", lambda: _stream(lambda: an.RollingZ(5), (1.0,), (2.0,))().z, "not full yet"),
    ("RollingOLS.fit", lambda: _stream(lambda: an.RollingOLS(5), (1.0, 2.0))().fit, "too few"),
    ("RollingCorr.corr", lambda: _stream(lambda: an.RollingCorr(3), (1.0, 2.0))().corr, "not full"),
    # NaN
    ("ols_hedge", lambda: an.ols_hedge(WITH_NAN, OTHER), "y: contains NaN or inf .*position 30"),
    ("ols_hedge x", lambda: an.ols_hedge(WALK, WITH_NAN), "x: contains NaN"),
    ("adf", lambda: an.adf(WITH_NAN), "series: contains NaN"),
    ("engle_granger", lambda: an.engle_granger(WALK, WITH_NAN), "x: contains NaN"),
    ("johansen", lambda: an.johansen(np.c_[WITH_NAN, OTHER]), "contains NaN or inf .row 30"),
    ("half_life", lambda: an.half_life(WITH_NAN), "spread: contains NaN"),
    ("hurst", lambda: an.hurst(WITH_NAN), "series: contains NaN"),
    ("spread", lambda: an.spread(WITH_NAN, OTHER, 1.0), "y: contains NaN"),
    ("zscore", lambda: an.zscore(WITH_NAN, 5), "series: contains NaN"),
    ("rolling_corr", lambda: an.rolling_corr(WALK, WITH_NAN, 5), "b: contains NaN"),
    ("risk", lambda: an.risk([0.01, NAN, 0.02], 252), "returns: contains NaN"),
    ("backtest", lambda: an.backtest(WITH_NAN, OTHER, window=10), "y: contains NaN"),
    ("kalman_hedge", lambda: an.kalman_hedge(WITH_NAN, OTHER), "y: contains NaN"),
    ("robust_hedge", lambda: an.robust_hedge(WALK, WITH_NAN), "x: contains NaN"),
    ("RollingOLS", _stream(lambda: an.RollingOLS(5), (NAN, 1.0)), "must be finite"),
    ("RollingZ", _stream(lambda: an.RollingZ(5), (math.inf,)), "must be finite"),
    ("RollingCorr", _stream(lambda: an.RollingCorr(5), (1.0, NAN)), "must be finite"),
    ("KalmanHedge", _stream(an.KalmanHedge, (NAN, 1.0)), "must be finite"),
    # constant series
    ("ols_hedge", lambda: an.ols_hedge(WALK, FLAT), "x: is constant"),
    ("ols_hedge y", lambda: an.ols_hedge(FLAT, WALK), "y: is constant"),
    ("robust_hedge", lambda: an.robust_hedge(WALK, FLAT), "x: is constant"),
    ("adf", lambda: an.adf(FLAT), "series: is constant"),
    ("engle_granger", lambda: an.engle_granger(FLAT, WALK), "y: is constant"),
    ("johansen", lambda: an.johansen(np.c_[WALK, FLAT]), "column 1: is constant"),
    ("half_life", lambda: an.half_life(FLAT), "spread: is constant"),
    ("hurst", lambda: an.hurst(FLAT), "series: is constant"),
    ("zscore", lambda: an.zscore(FLAT, 5), "constant"),
    ("rolling_corr", lambda: an.rolling_corr(FLAT, WALK, 5), "constant"),
    ("risk", lambda: an.risk([0.01] * 10, 252), "returns: is constant"),
    ("RollingZ.z", lambda: _stream(lambda: an.RollingZ(3), *[(7.0,)] * 4)().z, "constant"),
    ("RollingOLS.fit", lambda: _stream(lambda: an.RollingOLS(3), *[(1.0, 7.0)] * 4)().fit, "const"),
    # mismatched lengths
    ("ols_hedge", lambda: an.ols_hedge(WALK, OTHER[:-1]), "y and x: mismatched lengths .60 vs 59"),
    ("robust_hedge", lambda: an.robust_hedge(WALK, OTHER[:-1]), "mismatched lengths"),
    ("engle_granger", lambda: an.engle_granger(WALK, OTHER[:-1]), "mismatched lengths"),
    ("kalman_hedge", lambda: an.kalman_hedge(WALK, OTHER[:-1]), "mismatched lengths"),
    ("spread", lambda: an.spread(WALK, OTHER[:-1], 1.0), "mismatched lengths"),
    ("rolling_corr", lambda: an.rolling_corr(WALK, OTHER[:-1], 5), "mismatched lengths"),
    ("backtest", lambda: an.backtest(WALK, OTHER[:-1], window=5), "mismatched lengths"),
    ("arbitrage_basis", lambda: an.arbitrage_basis(WALK, OTHER[:-1]), "mismatched lengths"),
    # wrong shapes and types
    ("ols_hedge 2-D", lambda: an.ols_hedge(np.ones((5, 2)), WALK[:5]), "expected a 1-D series"),
    ("ols_hedge text", lambda: an.ols_hedge(["a", "b", "c"], WALK[:3]), "not a numeric series"),
    ("zscore window", lambda: an.zscore(WALK, 1), "window: must be at least 2"),
    ("zscore window type", lambda: an.zscore(WALK, 2.5), "window: must be an integer"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("label", "call", "message"), BAD_INPUT, ids=[f"{c[0]}: {c[2]}" for c in BAD_INPUT]
)
def test_bad_input_raises_one_clear_value_error(
    label: str, call: Callable[[], Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert isinstance(caught.value, an.AnalyticsInputError), label


def _float_fields(result: Any) -> list[float]:
    if isinstance(result, float):
        return [result]
    if isinstance(result, tuple):
        return [float(v) for v in result]
    return [float(getattr(result, f.name)) for f in dataclasses.fields(result)]


@settings(max_examples=40, deadline=None)
@given(spec=pair_specs(min_n=30, max_n=300))
def test_valid_input_never_yields_nan(spec: PairSpec) -> None:
    """Every number claimed is a number: finite, or inf where documented (half-life without
    mean reversion, Sortino without losses). Failures must be AnalyticsInputError."""
    y, x = spec.build()
    fit = an.ols_hedge(y, x)
    residual = an.spread(y, x, fit.beta, fit.alpha)
    calls: dict[str, Callable[[], Any]] = {
        "ols": lambda: fit,
        "robust": lambda: an.robust_hedge(y, x),
        "adf": lambda: an.adf(residual),
        "engle_granger": lambda: an.engle_granger(y, x),
        "half_life": lambda: an.half_life(residual),
        "hurst": lambda: an.hurst(residual),
        "risk": lambda: an.risk(np.diff(np.log(x)), 525_600),
        "zscore": lambda: an.zscore(residual, 20).last,
        "corr": lambda: an.rolling_corr(y, x, 20).last,
    }
    allowed_inf = {"half_life", "risk"}
    for name, call in calls.items():
        try:
            values = _float_fields(call())
        except an.AnalyticsInputError:
            continue
        assert not any(math.isnan(v) for v in values), name
        if name not in allowed_inf:
            assert all(math.isfinite(v) for v in values), name
