"""Kalman hedge: batch against a textbook matrix implementation, streaming against batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.analytics import AnalyticsInputError, KalmanHedge, kalman_hedge

from ._data import PairSpec, cointegrated_pair, pair_specs
from ._textbook import textbook_kalman


@settings(max_examples=50, deadline=None)
@given(
    spec=pair_specs(min_n=1, max_n=300),
    delta=st.sampled_from([1e-6, 1e-4, 1e-2]),
    obs_var=st.sampled_from([1e-3, 1.0, 25.0]),
)
def test_batch_equals_textbook_filter(spec: PairSpec, delta: float, obs_var: float) -> None:
    """Coefficients and spread_std relative 1e-9; the spread (a forecast error, y minus a
    forecast of similar size) absolute 1e-9 of |y|."""
    y, x = spec.build()
    result = kalman_hedge(y, x, delta=delta, obs_var=obs_var)
    alpha, beta, spread, spread_std = textbook_kalman(y, x, delta, obs_var)
    np.testing.assert_allclose(result.beta, beta, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(result.spread_std, spread_std, rtol=1e-9)
    assert np.all(np.abs(result.alpha - alpha) <= 1e-9 * (np.abs(alpha) + np.abs(beta * x)))
    assert np.all(np.abs(result.spread - spread) <= 1e-9 * np.abs(y))


@settings(max_examples=50, deadline=None)
@given(spec=pair_specs(min_n=1, max_n=300), delta=st.sampled_from([1e-5, 1e-4, 1e-3]))
def test_streaming_equals_batch_point_by_point(spec: PairSpec, delta: float) -> None:
    """Exact equality (tolerance 0): the batch form runs the very same update."""
    y, x = spec.build()
    batch = kalman_hedge(y, x, delta=delta, obs_var=1.0)
    stream = KalmanHedge(delta=delta, obs_var=1.0)
    for i in range(spec.n):
        state = stream.update(y[i], x[i])
        assert (state.alpha, state.beta, state.spread, state.spread_std) == (
            batch.alpha[i],
            batch.beta[i],
            batch.spread[i],
            batch.spread_std[i],
        )
    assert stream.count == spec.n
    assert (stream.alpha, stream.beta) == (batch.alpha[-1], batch.beta[-1])


def test_tracks_a_drifting_hedge_ratio() -> None:
    """beta drifting 1.0 -> 1.5 on prices near 100: the filter follows within 0.05."""
    rng = np.random.default_rng(4)
    n = 3_000
    x = 100.0 + np.cumsum(rng.normal(0.0, 0.5, n))
    true_beta = np.linspace(1.0, 1.5, n)
    y = true_beta * x + rng.normal(0.0, 0.1, n)
    result = kalman_hedge(y, x, delta=1e-4, obs_var=0.01)
    assert np.max(np.abs(result.beta[500:] - true_beta[500:])) < 0.05


def test_spread_std_never_below_observation_noise_on_btc_levels() -> None:
    """Joseph-form covariance stays PSD on x ~ 98,000: Q >= obs_var at every step."""
    y, x = cointegrated_pair(seed=2, n=5_000)
    result = kalman_hedge(y, x, delta=1e-4, obs_var=4.0)
    assert np.all(result.spread_std >= math.sqrt(4.0) * (1 - 1e-12))
    assert np.all(np.isfinite(result.beta))


def test_bad_parameters_and_input() -> None:
    with pytest.raises(AnalyticsInputError, match=r"delta: must be in \(0, 1\)"):
        KalmanHedge(delta=1.0)
    with pytest.raises(AnalyticsInputError, match="obs_var: must be > 0"):
        KalmanHedge(obs_var=0.0)
    stream = KalmanHedge()
    with pytest.raises(AnalyticsInputError, match="finite"):
        stream.update(1.0, math.inf)
    assert stream.count == 0
    with pytest.raises(AnalyticsInputError, match="mismatched lengths"):
        kalman_hedge([1.0, 2.0], [1.0])
    with pytest.raises(AnalyticsInputError, match="x: contains NaN"):
        kalman_hedge([1.0, 2.0], [1.0, math.nan])
