"""Risk report: a hand-computed case, and every field against numpy/pandas definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.analytics import AnalyticsInputError, max_drawdown, risk


def test_hand_computed_report() -> None:
    """Five returns worked through on paper (see comments); relative 1e-12."""
    report = risk([0.10, -0.05, 0.02, -0.10, 0.04], periods_per_year=252)
    # equity 1, 1.1, 1.045, 1.0659, 0.95931, 0.9976824: peak 1.1, trough 0.95931
    assert report.max_drawdown == pytest.approx(1.0 - 0.95931 / 1.1, rel=1e-12)
    # sorted -0.10, -0.05, 0.02, 0.04, 0.10; the 5% quantile sits 0.2 of the way to -0.05
    assert report.var_95 == pytest.approx(0.09, rel=1e-12)
    assert report.cvar_95 == pytest.approx(0.10, rel=1e-12)  # only -0.10 is at or below
    assert report.var_99 == pytest.approx(0.098, rel=1e-12)
    assert report.cvar_99 == pytest.approx(0.10, rel=1e-12)
    # mean 0.002; squared deviations sum to 0.02448, so the sample variance is 0.00612
    std = math.sqrt(0.02448 / 4)
    assert report.vol_ann == pytest.approx(std * math.sqrt(252), rel=1e-12)
    assert report.sharpe == pytest.approx(0.002 / std * math.sqrt(252), rel=1e-12)
    # downside deviation sqrt((0.05^2 + 0.10^2) / 5) = 0.05
    assert report.sortino == pytest.approx(0.002 / 0.05 * math.sqrt(252), rel=1e-12)


def _close(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    returns=st.lists(st.floats(-0.5, 0.5), min_size=2, max_size=300).filter(
        lambda r: len(set(r)) > 1 and float(np.std(r)) > 1e-100  # measurable spread
    ),
    periods=st.sampled_from([252.0, 525_600.0, 31_536_000.0]),
)
def test_report_equals_numpy_definitions(returns: list[float], periods: float) -> None:
    """Every field relative 1e-9 (absolute 1e-12 near zero) against the textbook formula."""
    r = np.array(returns)
    report = risk(r, periods)
    assert report.vol_ann == _close(r.std(ddof=1) * math.sqrt(periods))
    for level, var, cvar in (
        (0.95, report.var_95, report.cvar_95),
        (0.99, report.var_99, report.cvar_99),
    ):
        threshold = np.quantile(r, 1 - level)
        assert var == _close(-threshold)
        assert cvar == _close(-r[r <= threshold].mean())
        assert cvar >= var - 1e-15  # the tail's mean is beyond its edge
    equity = np.r_[1.0, np.cumprod(1 + r)]
    assert report.max_drawdown == _close(np.max(1 - equity / np.maximum.accumulate(equity)))
    assert report.sharpe == _close(r.mean() / r.std(ddof=1) * math.sqrt(periods))
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    if downside > 0:
        assert report.sortino == _close(r.mean() / downside * math.sqrt(periods))
    else:
        assert report.sortino == math.inf  # all gains: documented, not NaN


def test_max_drawdown_of_an_equity_curve() -> None:
    assert max_drawdown([1.0, 2.0, 1.0, 3.0, 2.4]) == pytest.approx(0.5, rel=1e-15)
    assert max_drawdown([1.0, 1.1, 1.2]) == 0.0
    with pytest.raises(AnalyticsInputError, match="must start above zero"):
        max_drawdown([0.0, 1.0])


@pytest.mark.parametrize(
    ("returns", "periods", "message"),
    [
        ([0.01], 252, "returns: too few points, needs at least 2, got 1"),
        ([0.01, math.nan, 0.02], 252, "returns: contains NaN or inf"),
        ([0.01, 0.01, 0.01], 252, "returns: is constant"),
        ([0.0, 1e-200], 252, "returns: variation too small to measure"),
        ([0.01, -1.5], 252, "below -100%"),
        ([0.01, 0.02], 0, "periods_per_year: must be > 0"),
    ],
)
def test_bad_input(returns: list[float], periods: float, message: str) -> None:
    with pytest.raises(AnalyticsInputError, match=message.replace("(", r"\(")):
        risk(returns, periods)
