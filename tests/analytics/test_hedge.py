"""Hedge ratios against statsmodels, and the streaming OLS against the batch OLS."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import theilslopes

from spreadbus.analytics import AnalyticsInputError, HedgeFit, RollingOLS, ols_hedge, robust_hedge

from ._data import PairSpec, cointegrated_pair, pair_specs

# Coefficients and R-squared are compared at 1e-9. statsmodels forms its residuals as
# y - X @ params on the raw prices, each off by ~1e-16 * |y|: when the fit is near perfect
# (residuals 1e-7 on y ~ 364) that alone moves its resid_std by ~1e-5 relative, while ours
# agrees with exact arithmetic to 1e-12 (checked in the next test). So resid_std is compared
# at 1e-7 relative *or* 1e-13 * max|y| absolute, the size of statsmodels' own rounding.
RTOL_COEF = 1e-9
RTOL_RESID = 1e-7


def _assert_matches_statsmodels(
    fit: HedgeFit, y: np.ndarray, x: np.ndarray, intercept: bool
) -> None:
    design = sm.add_constant(x, has_constant="add") if intercept else x[:, None]
    reference = sm.OLS(y, design).fit()
    alpha, beta = (
        (reference.params[0], reference.params[1]) if intercept else (0.0, reference.params[0])
    )
    assert fit.beta == pytest.approx(beta, rel=RTOL_COEF)
    # alpha = mean(y) - beta * mean(x): its error scales with the terms it is the difference of
    alpha_scale = abs(float(np.mean(y))) + abs(beta * float(np.mean(x)))
    assert abs(fit.alpha - alpha) <= RTOL_COEF * alpha_scale
    assert fit.r2 == pytest.approx(reference.rsquared, abs=RTOL_COEF)
    assert fit.resid_std == pytest.approx(
        math.sqrt(reference.mse_resid), rel=RTOL_RESID, abs=1e-13 * float(np.max(np.abs(y)))
    )
    assert fit.n == y.size


@settings(max_examples=100, deadline=None)
@given(spec=pair_specs(), intercept=st.booleans())
def test_ols_hedge_equals_statsmodels(spec: PairSpec, intercept: bool) -> None:
    y, x = spec.build()
    _assert_matches_statsmodels(ols_hedge(y, x, intercept=intercept), y, x, intercept)


def _exact_fit(ys: list[float], xs: list[float]) -> tuple[float, float, float]:
    """(beta, R2, SSR) in exact rational arithmetic, each rounded once at the end."""
    y_exact = [Fraction(v) for v in ys]
    x_exact = [Fraction(v) for v in xs]
    n = len(ys)
    mean_x, mean_y = sum(x_exact) / n, sum(y_exact) / n
    sxx = sum((v - mean_x) ** 2 for v in x_exact)
    syy = sum((v - mean_y) ** 2 for v in y_exact)
    sxy = sum((a - mean_x) * (b - mean_y) for a, b in zip(x_exact, y_exact, strict=True))
    return float(sxy / sxx), float(sxy * sxy / (sxx * syy)), float(syy - sxy * sxy / sxx)


@settings(max_examples=60, deadline=None)
@given(spec=pair_specs())
def test_ols_hedge_equals_exact_arithmetic(spec: PairSpec) -> None:
    """beta and R2 relative 1e-10, SSR relative 1e-9 of exact rational arithmetic."""
    y, x = spec.build()
    fit = ols_hedge(y, x)
    beta, r2, ssr = _exact_fit(y.tolist(), x.tolist())
    assert fit.beta == pytest.approx(beta, rel=1e-10)
    assert fit.r2 == pytest.approx(r2, rel=1e-10)
    assert fit.resid_std**2 * (spec.n - 2) == pytest.approx(ssr, rel=1e-9, abs=1e-300)


def test_ols_hedge_btc_eth_levels_equal_statsmodels() -> None:
    y, x = cointegrated_pair(seed=7, n=500)  # x near 98,000, y near 3,580
    fit = ols_hedge(y, x)
    _assert_matches_statsmodels(fit, y, x, intercept=True)
    assert fit.beta == pytest.approx(0.035, rel=0.05)  # recovers the simulated hedge


def test_ols_hedge_accepts_pandas() -> None:
    y, x = cointegrated_pair(seed=3, n=100)
    index = pd.date_range("2025-01-01", periods=100, freq="s", tz="UTC")
    assert ols_hedge(pd.Series(y, index=index), pd.Series(x, index=index)) == ols_hedge(y, x)


@settings(max_examples=60, deadline=None)
@given(spec=pair_specs(min_n=3, max_n=250), window=st.integers(3, 60))
def test_rolling_ols_equals_batch_after_every_update(spec: PairSpec, window: int) -> None:
    """Relative 1e-9 on beta (alpha on its own scale, R2 absolute, see the helper)."""
    y, x = spec.build()
    rolling = RollingOLS(window)
    for i in range(spec.n):
        rolling.update(y[i], x[i])
        if i < 2:
            continue
        start = max(0, i + 1 - window)
        _assert_streaming_equals_batch(rolling.fit, y[start : i + 1], x[start : i + 1])
    assert rolling.ready == (spec.n >= window)


def _assert_streaming_equals_batch(streaming: HedgeFit, y: np.ndarray, x: np.ndarray) -> None:
    """beta relative 1e-9; alpha, R2 and the residual variance on their natural scales."""
    batch = ols_hedge(y, x)
    assert streaming.n == batch.n
    assert streaming.beta == pytest.approx(batch.beta, rel=1e-9)
    # alpha = mean(y) - beta * mean(x): relative 1e-9 of the terms it is the difference of
    alpha_scale = abs(float(y.mean())) + abs(batch.beta * float(x.mean()))
    assert abs(streaming.alpha - batch.alpha) <= 1e-9 * alpha_scale
    assert streaming.r2 == pytest.approx(batch.r2, abs=1e-9)
    # SSR = Syy - Sxy^2/Sxx cancels when R2 ~ 1: the residual variance is compared relative
    # to y's variance, the quantity it is a difference of.
    assert abs(streaming.resid_std**2 - batch.resid_std**2) <= 1e-9 * float(y.var(ddof=2))


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(1e-3, 1e5), st.floats(1e-3, 1e5)), min_size=3, max_size=80),
    window=st.integers(3, 20),
)
def test_rolling_ols_is_correctly_rounded_for_any_prices(
    points: list[tuple[float, float]], window: int
) -> None:
    """Any prices in [1e-3, 1e5], near-duplicates included: after every update beta, R2 and
    SSR are within 1e-14 relative of exact rational arithmetic (they are rounded once)."""
    rolling = RollingOLS(window)
    for i, (y_i, x_i) in enumerate(points):
        rolling.update(y_i, x_i)
        recent = points[max(0, i + 1 - window) : i + 1]
        ys, xs = [p[0] for p in recent], [p[1] for p in recent]
        if len(recent) < 3:
            continue
        if len(set(xs)) == 1 or len(set(ys)) == 1:
            with pytest.raises(AnalyticsInputError, match="constant"):
                _ = rolling.fit
            continue
        fit = rolling.fit
        beta, r2, ssr = _exact_fit(ys, xs)
        assert fit.beta == pytest.approx(beta, rel=1e-14)
        assert fit.r2 == pytest.approx(r2, rel=1e-14)
        assert fit.resid_std**2 * (len(recent) - 2) == pytest.approx(ssr, rel=1e-14, abs=1e-300)


def test_rolling_ols_is_stable_on_btc_level_prices() -> None:
    """98,000 vs 3,500 moving by cents: streaming stays within 1e-9, naive running sums do not."""
    rng = np.random.default_rng(11)
    n, window = 5_000, 300
    x = 98_000.0 + np.cumsum(rng.normal(0.0, 0.5, n))  # 0.5 USD steps on 98,000
    y = 3_500.0 + 0.035 * (x - 98_000.0) + rng.normal(0.0, 0.01, n)
    rolling = RollingOLS(window)
    sx = sy = sxx = sxy = 0.0  # what a naive incremental implementation keeps
    for i in range(n):
        rolling.update(y[i], x[i])
        sx, sy, sxx, sxy = sx + x[i], sy + y[i], sxx + x[i] * x[i], sxy + x[i] * y[i]
        if i >= window:
            old_x, old_y = x[i - window], y[i - window]
            sx, sy, sxx, sxy = sx - old_x, sy - old_y, sxx - old_x * old_x, sxy - old_x * old_y
    batch = ols_hedge(y[-window:], x[-window:])
    assert rolling.fit.beta == pytest.approx(batch.beta, rel=1e-9)
    naive_beta = (window * sxy - sx * sy) / (window * sxx - sx * sx)
    assert abs(naive_beta - batch.beta) > 1e-8 * abs(batch.beta)  # the tolerance has teeth


def test_refit_recomputes_exactly_and_keeps_streaming() -> None:
    y, x = cointegrated_pair(seed=5, n=2_000)
    rolling = RollingOLS(100)
    for y_i, x_i in zip(y, x, strict=True):
        rolling.update(y_i, x_i)
    refit = rolling.refit()
    batch = ols_hedge(y[-100:], x[-100:])
    assert refit.beta == pytest.approx(batch.beta, rel=1e-12)  # same two-pass algorithm
    assert refit.alpha == pytest.approx(batch.alpha, rel=1e-12)
    window_y, window_x = rolling.window_arrays()
    np.testing.assert_array_equal(window_y, y[-100:])
    np.testing.assert_array_equal(window_x, x[-100:])
    rolling.update(y[0], x[0])  # streaming continues from the exact sums
    _assert_streaming_equals_batch(rolling.fit, np.r_[y[-99:], y[0]], np.r_[x[-99:], x[0]])


def test_rolling_ols_guards() -> None:
    rolling = RollingOLS(5)
    rolling.update(1.0, 2.0)
    rolling.update(2.0, 3.0)
    with pytest.raises(AnalyticsInputError, match="too few points"):
        _ = rolling.fit
    with pytest.raises(AnalyticsInputError, match="finite"):
        rolling.update(math.nan, 1.0)
    assert rolling.count == 2  # a rejected update leaves the state alone
    for value in (5.0, 1.0, 7.0, 2.0, 2.0, 2.0, 2.0, 2.0):
        rolling.update(value, 4.0)
    with pytest.raises(AnalyticsInputError, match="x: the last 5 values are constant"):
        _ = rolling.fit
    rolling.update(2.0, 5.0)
    with pytest.raises(AnalyticsInputError, match="y: the last 5 values are constant"):
        _ = rolling.fit
    with pytest.raises(AnalyticsInputError, match="window: must be at least 3"):
        RollingOLS(2)


def test_rolling_ols_leaving_a_flat_stretch_recovers() -> None:
    """After a flat window (residue in the sums), new variation gives the batch answer again."""
    rolling = RollingOLS(4)
    sequence = [(3500.0, 98000.0), (3510.0, 98300.0), (3490.0, 97700.0)] + [(3500.0, 98000.0)] * 6
    sequence += [(3502.0, 98050.0), (3497.0, 97930.0)]
    for y_i, x_i in sequence:
        rolling.update(y_i, x_i)
    ys, xs = zip(*sequence[-4:], strict=True)
    _assert_streaming_equals_batch(rolling.fit, np.array(ys), np.array(xs))


def test_robust_hedge_huber_equals_statsmodels_rlm() -> None:
    y, x = cointegrated_pair(seed=9, n=400)
    fit = robust_hedge(y, x, method="huber")
    x_dev = x - x.mean()
    reference = sm.RLM(y, sm.add_constant(x_dev), M=sm.robust.norms.HuberT()).fit()
    assert fit.beta == pytest.approx(reference.params[1], rel=1e-9)
    assert fit.alpha == pytest.approx(
        reference.params[0] - reference.params[1] * x.mean(), rel=1e-9
    )


def test_robust_hedge_theil_sen_equals_scipy() -> None:
    y, x = cointegrated_pair(seed=9, n=300)
    fit = robust_hedge(y, x, method="theil_sen")
    reference = theilslopes(y, x)
    assert fit.beta == pytest.approx(reference.slope, rel=1e-9)
    assert fit.alpha == pytest.approx(reference.intercept, rel=1e-9)


@pytest.mark.parametrize("method", ["huber", "theil_sen"])
def test_robust_hedge_resists_bad_prints(method: str) -> None:
    """5% bad prints at high-leverage bars drag OLS by >50%; a robust slope moves <5%."""
    y, x = cointegrated_pair(seed=21, n=400)
    dirty = y.copy()
    dirty[x >= np.quantile(x, 0.95)] += 400.0  # 200x the spread's std, where x is highest
    robust = robust_hedge(dirty, x, method=method)  # type: ignore[arg-type]
    robust_clean = robust_hedge(y, x, method=method)  # type: ignore[arg-type]
    ols_clean = ols_hedge(y, x)
    assert abs(ols_hedge(dirty, x).beta - ols_clean.beta) > 0.5 * abs(ols_clean.beta)
    assert abs(robust.beta - robust_clean.beta) < 0.05 * abs(robust_clean.beta)
    assert robust.n == 400
    assert math.isfinite(robust.r2)
    assert robust.resid_std > 0


def test_robust_hedge_rejects_unknown_method() -> None:
    y, x = cointegrated_pair(seed=1, n=50)
    with pytest.raises(AnalyticsInputError, match="method: must be one of"):
        robust_hedge(y, x, method="lasso")  # type: ignore[arg-type]
