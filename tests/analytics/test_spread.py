"""Spread, z-score and correlation: batch against pandas, streaming against batch and exact."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.analytics import (
    AnalyticsInputError,
    RollingCorr,
    RollingZ,
    kalman_hedge,
    rolling_corr,
    spread,
    zscore,
)

from ._data import PairSpec, cointegrated_pair, pair_specs


def _exact_z(values: list[float]) -> float:
    """z of the last value with ddof=1, in exact rational arithmetic, then rounded."""
    exact = [Fraction(v) for v in values]
    n = len(exact)
    mean = sum(exact) / n
    variance = sum((v - mean) ** 2 for v in exact) / (n - 1)
    deviation = exact[-1] - mean
    return math.copysign(math.sqrt(float(deviation**2 / variance)), float(deviation))


def test_spread_scalar_and_per_point_hedges() -> None:
    y, x = cointegrated_pair(seed=1, n=200)
    np.testing.assert_array_equal(spread(y, x, 0.035, 150.0), y - 150.0 - 0.035 * x)
    kalman = kalman_hedge(y, x, obs_var=4.0)
    np.testing.assert_array_equal(
        spread(y, x, kalman.beta, kalman.alpha), y - kalman.alpha - kalman.beta * x
    )
    with pytest.raises(AnalyticsInputError, match=r"beta: mismatched length \(3"):
        spread(y, x, [1.0, 2.0, 3.0])
    with pytest.raises(AnalyticsInputError, match="alpha: must be finite"):
        spread(y, x, 1.0, math.nan)


@settings(max_examples=50, deadline=None)
@given(spec=pair_specs(min_n=2, max_n=400), window=st.integers(2, 80))
def test_zscore_equals_pandas_rolling(spec: PairSpec, window: int) -> None:
    """Against pandas' rolling z-score convention (window ends at and includes t, ddof=1),
    evaluated per window with ``rolling.apply``: relative 1e-9, widened by the reference's
    own rounding, ~1e-16 * max|w| / std(w), on windows whose values agree to many digits
    (there our answer is the exact one, checked in the next test).

    Not against ``s.rolling(w).std()``: that is an add/remove online algorithm, measured here
    off by up to ~2e-5 relative (window 2, prices ~12,000), so it cannot referee 1e-9.
    """
    values, _ = spec.build()
    if spec.n < window:
        with pytest.raises(AnalyticsInputError, match="too few points"):
            zscore(values, window)
        return
    result = zscore(values, window)
    rolling = pd.Series(values).rolling(window)
    expected = rolling.apply(lambda w: (w[-1] - w.mean()) / w.std(ddof=1), raw=True).to_numpy()
    conditioning = rolling.apply(lambda w: np.max(np.abs(w)) / w.std(ddof=1), raw=True)
    tolerance = 1e-9 * np.abs(expected) + 1e-9 + 1e-14 * conditioning.to_numpy()
    assert np.isnan(result.values[: window - 1]).all()
    assert np.all(np.abs(result.values - expected)[window - 1 :] <= tolerance[window - 1 :])
    assert result.last == result.values[-1]


@settings(max_examples=25, deadline=None)
@given(spec=pair_specs(min_n=2, max_n=150), window=st.integers(2, 40))
def test_zscore_equals_exact_arithmetic(spec: PairSpec, window: int) -> None:
    """Relative 1e-9 of the exact rational z-score of every window (two-pass rounding only)."""
    values, _ = spec.build()
    if spec.n < window:
        return
    result = zscore(values, window).values
    for end in range(window, spec.n + 1):
        expected = _exact_z(values[end - window : end].tolist())
        assert result[end - 1] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e5, 1e5), min_size=2, max_size=120),
    window=st.integers(2, 30),
)
def test_rolling_z_is_exact_for_any_floats(values: list[float], window: int) -> None:
    """Relative 1e-14 of the exact rational z-score after every update, whatever the values
    (near-duplicates, mixed magnitudes): the window sums are kept exactly."""
    rolling = RollingZ(window)
    for i, value in enumerate(values):
        rolling.update(value)
        recent = values[max(0, i + 1 - window) : i + 1]
        if len(recent) < window:
            assert not rolling.ready
            with pytest.raises(AnalyticsInputError, match="window not full yet"):
                _ = rolling.z
        elif len(set(recent)) == 1:
            with pytest.raises(AnalyticsInputError, match="constant"):
                _ = rolling.z
        else:
            assert rolling.z == pytest.approx(_exact_z(recent), rel=1e-14, abs=1e-300)


@settings(max_examples=50, deadline=None)
@given(spec=pair_specs(min_n=2, max_n=300), window=st.integers(2, 60))
def test_rolling_z_equals_batch_zscore(spec: PairSpec, window: int) -> None:
    """Relative 1e-9 (absolute 1e-9 near z = 0) on every point after the warm-up."""
    values, _ = spec.build()
    rolling = RollingZ(window)
    streamed = []
    for value in values:
        rolling.update(value)
        streamed.append(rolling.z if rolling.ready else math.nan)
    if spec.n >= window:
        np.testing.assert_allclose(streamed, zscore(values, window).values, rtol=1e-9, atol=1e-9)
        assert rolling.mean == pytest.approx(float(values[-window:].mean()), rel=1e-12)
        assert rolling.std == pytest.approx(float(values[-window:].std(ddof=1)), rel=1e-9)


def test_flat_windows() -> None:
    values = [1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 4.0]
    result = zscore(values, 3)
    assert np.isnan(result.values[5])  # window (5, 5, 5): undefined, not a number
    assert result.last == pytest.approx(_exact_z([5.0, 5.0, 4.0]), rel=1e-12)
    with pytest.raises(AnalyticsInputError, match="the last 3 values are constant"):
        zscore(values[:6], 3)
    rolling = RollingZ(3)
    for value in values[:6]:
        rolling.update(value)
    with pytest.raises(AnalyticsInputError, match="constant"):
        _ = rolling.std
    rolling.update(4.0)
    assert rolling.z == pytest.approx(result.last, rel=1e-12)


def test_rolling_z_refit_changes_nothing() -> None:
    rolling = RollingZ(5)
    for value in [1e-12, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]:  # a fine-bit value passes through
        rolling.update(value)
    before = rolling.z
    rolling.refit()
    assert rolling.z == before


@settings(max_examples=50, deadline=None)
@given(spec=pair_specs(min_n=3, max_n=300), window=st.integers(2, 60))
def test_rolling_corr_equals_pandas(spec: PairSpec, window: int) -> None:
    """Absolute 1e-9 against ``a.pct_change().rolling(w).corr(b.pct_change())``."""
    a, b = spec.build()
    if spec.n < window + 1:
        with pytest.raises(AnalyticsInputError, match="too few points"):
            rolling_corr(a, b, window)
        return
    result = rolling_corr(a, b, window)
    expected = pd.Series(a).pct_change().rolling(window).corr(pd.Series(b).pct_change())
    np.testing.assert_allclose(result.values, expected.to_numpy(), rtol=0, atol=1e-9)
    assert np.isnan(result.values[:window]).all()


def test_rolling_corr_on_levels_equals_numpy() -> None:
    """Relative 1e-12 against np.corrcoef on the last window."""
    a, b = cointegrated_pair(seed=4, n=300)
    result = rolling_corr(a, b, 50, on="levels")
    assert result.last == pytest.approx(np.corrcoef(a[-50:], b[-50:])[0, 1], rel=1e-12)
    assert np.isnan(result.values[:49]).all()
    assert not np.isnan(result.values[49:]).any()


@settings(max_examples=50, deadline=None)
@given(
    spec=pair_specs(min_n=3, max_n=300),
    window=st.integers(2, 60),
    on=st.sampled_from(["returns", "levels"]),
)
def test_rolling_corr_streaming_equals_batch(spec: PairSpec, window: int, on: str) -> None:
    """Relative 1e-12 (both are exact up to final rounding); absolute 1e-12 near 0."""
    a, b = spec.build()
    rolling = RollingCorr(window, on=on)  # type: ignore[arg-type]
    streamed = []
    for a_i, b_i in zip(a, b, strict=True):
        rolling.update(a_i, b_i)
        streamed.append(rolling.corr if rolling.ready else math.nan)
    extra = 1 if on == "returns" else 0
    if spec.n >= window + extra:
        batch = rolling_corr(a, b, window, on=on)  # type: ignore[arg-type]
        np.testing.assert_allclose(streamed, batch.values, rtol=1e-12, atol=1e-12)


def test_correlation_guards() -> None:
    with pytest.raises(AnalyticsInputError, match="a: prices must be > 0"):
        rolling_corr([1.0, 0.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], 2)
    with pytest.raises(AnalyticsInputError, match="on: must be one of"):
        rolling_corr([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 2, on="ranks")  # type: ignore[arg-type]
    with pytest.raises(AnalyticsInputError, match="constant over the last 2 returns"):
        rolling_corr([1.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 5.0], 2)
    stream = RollingCorr(2)
    for a_i, b_i in [(1.0, 1.0), (2.0, 2.0), (2.0, 3.0), (2.0, 5.0)]:
        stream.update(a_i, b_i)
    with pytest.raises(AnalyticsInputError, match="a: the last 2 values are constant"):
        _ = stream.corr
    with pytest.raises(AnalyticsInputError, match="prices must be > 0"):
        stream.update(-1.0, 2.0)
