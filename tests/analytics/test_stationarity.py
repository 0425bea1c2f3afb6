"""Unit-root and cointegration tests against statsmodels; half-life and Hurst on known processes."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter
from statsmodels.tsa.stattools import adfuller, coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from spreadbus.analytics import (
    AnalyticsInputError,
    adf,
    engle_granger,
    half_life,
    hurst,
    johansen,
)

from ._data import cointegrated_pair

# Our functions call the same statsmodels code on the same float64 array: results must agree
# to the last bit up to float formatting; 1e-12 relative leaves room for nothing else.
RTOL = 1e-12


def _ar1(seed: int, n: int, phi: float, level: float = 0.0) -> np.ndarray:
    shocks = np.random.default_rng(seed).normal(0.0, 1.0, n)
    path: np.ndarray = lfilter([1.0], [1.0, -phi], shocks) + level
    return path


def _reference(compute: Callable[[], Any]) -> Any | None:
    """statsmodels' answer, or None where it fails or warns (degenerate input)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = compute()
        except (ValueError, np.linalg.LinAlgError):
            return None
    alarms = [w for w in caught if not issubclass(w.category, DeprecationWarning | FutureWarning)]
    return None if alarms else result


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(10, 400),
    phi=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
    level=st.sampled_from([0.0, 3_500.0, 98_000.0]),
    regression=st.sampled_from(["c", "ct", "ctt", "n"]),
    lag_choice=st.sampled_from(["AIC", "BIC", "t-stat", None]),
)
def test_adf_equals_adfuller(
    seed: int, n: int, phi: float, level: float, regression: str, lag_choice: str | None
) -> None:
    series = _ar1(seed, n, phi, level)
    maxlag = None if lag_choice is not None else min(2, n // 2 - 3)
    reference = _reference(
        lambda: adfuller(
            series, maxlag=maxlag, regression=regression, autolag=lag_choice, result_object=True
        )
    )
    if reference is None or not math.isfinite(reference.statistic):
        with pytest.raises(AnalyticsInputError):
            adf(series, maxlag=maxlag, regression=regression, autolag=lag_choice)  # type: ignore[arg-type]
        return
    result = adf(series, maxlag=maxlag, regression=regression, autolag=lag_choice)  # type: ignore[arg-type]
    assert result.stat == pytest.approx(reference.statistic, rel=RTOL)
    assert result.pvalue == pytest.approx(reference.pvalue, rel=RTOL, abs=1e-300)
    assert (result.usedlag, result.nobs) == (reference.lags, reference.nobs)
    crit = reference.critical_values
    assert (result.crit_1, result.crit_5, result.crit_10) == (crit["1%"], crit["5%"], crit["10%"])


def test_adf_separates_stationary_from_random_walk() -> None:
    assert adf(_ar1(1, 500, 0.5)).pvalue < 0.01
    assert adf(np.cumsum(np.random.default_rng(1).normal(size=500))).pvalue > 0.05


def test_adf_rejects_a_straight_line() -> None:
    """statsmodels warns (rank-deficient design) and then reports p ~ 0.0005: not evidence."""
    with pytest.raises(AnalyticsInputError, match="adf: degenerate input"):
        adf(np.arange(50.0))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(10, 400),
    half=st.sampled_from([2.0, 10.0, 1e9]),
    trend=st.sampled_from(["c", "ct", "ctt"]),
)
def test_engle_granger_equals_coint(seed: int, n: int, half: float, trend: str) -> None:
    y, x = cointegrated_pair(seed, n, half_life=half)
    reference = _reference(lambda: coint(y, x, trend=trend))
    if reference is None or not math.isfinite(reference[0]):
        with pytest.raises(AnalyticsInputError):
            engle_granger(y, x, trend=trend)  # type: ignore[arg-type]
        return
    result = engle_granger(y, x, trend=trend)  # type: ignore[arg-type]
    assert result.stat == pytest.approx(reference[0], rel=RTOL)
    assert result.pvalue == pytest.approx(reference[1], rel=RTOL, abs=1e-300)
    assert (result.crit_1, result.crit_5, result.crit_10) == tuple(reference[2])
    stat, pvalue, crit_1, crit_5, crit_10 = result  # unpacks as the 5-tuple
    assert (stat, pvalue, crit_1, crit_5, crit_10) == tuple(result)


def test_engle_granger_finds_the_simulated_cointegration() -> None:
    y, x = cointegrated_pair(seed=8, n=500, half_life=5.0)
    assert engle_granger(y, x).pvalue < 0.01
    rng = np.random.default_rng(8)
    independent = 3_500.0 + np.cumsum(rng.normal(0.0, 5.0, 500))
    assert engle_granger(independent, x).pvalue > 0.05


def test_engle_granger_rejects_collinear_legs() -> None:
    _, x = cointegrated_pair(seed=1, n=200)
    with pytest.raises(AnalyticsInputError, match="colinear"):
        engle_granger(2.0 * x, x)


@pytest.mark.parametrize(("det_order", "k_ar_diff"), [(-1, 1), (0, 1), (1, 2), (0, 0)])
@pytest.mark.parametrize("n_series", [2, 3])
def test_johansen_equals_coint_johansen(det_order: int, k_ar_diff: int, n_series: int) -> None:
    """Exact equality of every array: same function, same input."""
    y, x = cointegrated_pair(seed=12, n=600)
    third = 50.0 + np.cumsum(np.random.default_rng(12).normal(size=600))
    prices = np.column_stack([y, x, third][:n_series])
    result = johansen(prices, det_order=det_order, k_ar_diff=k_ar_diff)
    reference = coint_johansen(prices, det_order, k_ar_diff)
    np.testing.assert_array_equal(result.trace_stat, reference.lr1)
    np.testing.assert_array_equal(result.max_eig_stat, reference.lr2)
    np.testing.assert_array_equal(result.trace_crit, reference.cvt)
    np.testing.assert_array_equal(result.max_eig_crit, reference.cvm)
    np.testing.assert_array_equal(result.eigenvectors, reference.evec)
    np.testing.assert_array_equal(result.eigenvalues, reference.eig)
    assert result.trace_stat.shape == (n_series,)
    assert result.trace_crit.shape == (n_series, 3)


def test_johansen_sees_one_cointegrating_vector() -> None:
    y, x = cointegrated_pair(seed=13, n=1_000, half_life=5.0)
    result = johansen(np.column_stack([y, x]))
    assert result.trace_stat[0] > result.trace_crit[0, 2]  # r = 0 rejected at 99%
    vector = result.eigenvectors[:, 0]
    assert -vector[1] / vector[0] == pytest.approx(0.035, rel=0.05)  # the hedge ratio


def test_johansen_input_checks() -> None:
    with pytest.raises(AnalyticsInputError, match="expected a 2-D array"):
        johansen(np.arange(100.0))
    with pytest.raises(AnalyticsInputError, match="needs between 2 and 12 series"):
        johansen(np.ones((100, 1)))
    with pytest.raises(AnalyticsInputError, match="column 1: is constant"):
        johansen(np.column_stack([np.arange(100.0) ** 1.5, np.ones(100)]))
    with pytest.raises(AnalyticsInputError, match="det_order"):
        johansen(np.random.default_rng(0).normal(size=(100, 2)), det_order=2)


@pytest.mark.parametrize("true_half_life", [5.0, 10.0, 20.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_half_life_recovers_simulated_ou(true_half_life: float, seed: int) -> None:
    """Within 10% (the issue's bar) on 100,000 bars; the estimator's own sd there is <3%."""
    spread = _ar1(seed, 100_000, 0.5 ** (1.0 / true_half_life), level=25.0)
    assert half_life(spread) == pytest.approx(true_half_life, rel=0.10)


def test_half_life_equals_statsmodels_ar1_regression() -> None:
    """-ln2 / ln(1 + b), b the OLS slope of diff(s) on s_{t-1}: relative 1e-9."""
    spread = _ar1(3, 2_000, 0.9, level=-4.0)
    fit = sm.OLS(np.diff(spread), sm.add_constant(spread[:-1])).fit()
    expected = -math.log(2.0) / math.log(1.0 + fit.params[1])
    assert half_life(spread) == pytest.approx(expected, rel=1e-9)


def test_half_life_edge_cases() -> None:
    explosive = _ar1(4, 300, 1.02)
    assert half_life(explosive) == math.inf
    alternating = np.array([1.0, -1.0] * 50) + np.random.default_rng(0).normal(0, 0.01, 100)
    assert half_life(alternating) == 0.0  # overshoots the mean every bar
    random_walk = np.cumsum(np.random.default_rng(5).normal(size=1_000))
    # phi-hat is biased below 1 on a unit root (Dickey-Fuller), so this is finite but long
    assert half_life(random_walk) > 50.0
    with pytest.raises(AnalyticsInputError, match="constant except for its last value"):
        half_life([1.0, 1.0, 1.0, 2.0])


def _fractional_gaussian_noise(n: int, hurst_exponent: float, seed: int) -> np.ndarray:
    """Exact fGn by circulant embedding (Davies-Harte)."""
    k = np.arange(n + 1, dtype=np.float64)
    two_h = 2.0 * hurst_exponent
    gamma = 0.5 * ((k + 1) ** two_h - 2.0 * k**two_h + np.abs(k - 1) ** two_h)
    row = np.r_[gamma, gamma[-2:0:-1]]
    eigenvalues = np.fft.fft(row).real
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=row.size) + 1j * rng.normal(size=row.size)
    sample: np.ndarray = np.fft.fft(np.sqrt(np.maximum(eigenvalues, 0.0) / row.size) * noise)
    return sample[:n].real


@pytest.mark.parametrize("true_hurst", [0.3, 0.5, 0.7])
def test_hurst_recovers_fractional_brownian_motion(true_hurst: float) -> None:
    """Mean of 5 paths of 4,096 points within 0.05 (each estimate's sd is ~0.02)."""
    estimates = [
        hurst(np.cumsum(_fractional_gaussian_noise(4_096, true_hurst, seed))) for seed in range(5)
    ]
    assert float(np.mean(estimates)) == pytest.approx(true_hurst, abs=0.05)


def test_hurst_of_a_mean_reverting_spread_is_low() -> None:
    assert hurst(_ar1(6, 2_000, 0.9)) < 0.3


def test_stationarity_input_checks() -> None:
    with pytest.raises(AnalyticsInputError, match="series: too few points, needs at least 10"):
        adf(np.arange(9.0))
    with pytest.raises(AnalyticsInputError, match="series: is constant"):
        adf(np.full(50, 3.0))
    with pytest.raises(AnalyticsInputError, match="series: contains NaN"):
        hurst(np.r_[np.arange(30.0), np.nan])
    with pytest.raises(AnalyticsInputError, match="mismatched lengths"):
        engle_granger(np.arange(30.0), np.arange(31.0))
    with pytest.raises(AnalyticsInputError, match="regression: must be one of"):
        adf(np.random.default_rng(0).normal(size=50), regression="x")  # type: ignore[arg-type]
