"""Kalman hedge started from a given state and covariance: against a textbook matrix filter
started from the same point; the default start is the zero state with zero covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spreadbus.analytics import AnalyticsInputError, KalmanHedge, kalman_hedge

from ._data import cointegrated_pair
from ._textbook import textbook_kalman


def test_started_filter_equals_textbook_started_at_the_same_point() -> None:
    """Relative 1e-8 on beta, absolute 1e-8 of |y| on the forecast error."""
    y, x = cointegrated_pair(n=400, beta=1.7, seed=3)
    theta0 = np.array([2.0, 1.5])
    cov0 = np.array([[0.5, -0.01], [-0.01, 0.02]])
    result = kalman_hedge(
        y, x, 1e-4, 0.5, initial_state=(2.0, 1.5), initial_cov=((0.5, -0.01), (-0.01, 0.02))
    )
    _, beta, spread, _ = textbook_kalman(y, x, 1e-4, 0.5, theta0, cov0)
    np.testing.assert_allclose(result.beta, beta, rtol=1e-8)
    assert np.all(np.abs(result.spread - spread) <= 1e-8 * np.abs(y))
    # the very first forecast uses the given state: y_0 - (alpha0 + beta0 x_0)
    assert result.spread[0] == pytest.approx(y[0] - (2.0 + 1.5 * x[0]), rel=1e-12)


def test_started_at_the_true_hedge_it_tracks_from_the_first_bar() -> None:
    """From (0, 0) on raw prices the slope is about y/x (1.9 here: a large intercept), not the
    hedge; from the true hedge it is right at once (within 0.05 of 1.7 over 50 bars)."""
    y, x = cointegrated_pair(n=200, beta=1.7, alpha=20_000.0, seed=5)
    started = kalman_hedge(y, x, 1e-6, 1.0, initial_state=(float(y[0] - 1.7 * x[0]), 1.7))
    assert np.max(np.abs(started.beta[:50] - 1.7)) < 0.05
    cold = kalman_hedge(y, x, 1e-6, 1.0)
    assert np.max(np.abs(cold.beta[:50] - 1.7)) > 0.05


def test_default_start_is_zero_state_and_zero_covariance() -> None:
    """Exact equality: the old behaviour is the default."""
    y, x = cointegrated_pair(n=100, beta=0.8, seed=1)
    default = kalman_hedge(y, x)
    explicit = kalman_hedge(y, x, initial_state=(0.0, 0.0), initial_cov=((0.0, 0.0), (0.0, 0.0)))
    np.testing.assert_array_equal(default.beta, explicit.beta)
    np.testing.assert_array_equal(default.spread, explicit.spread)


@pytest.mark.parametrize(
    ("cov", "message"),
    [
        (((1.0, 0.5), (0.4, 1.0)), "symmetric"),
        (((1.0, 2.0), (2.0, 1.0)), "positive semi-definite"),
        (((-1.0, 0.0), (0.0, 1.0)), "positive semi-definite"),
        (((math.nan, 0.0), (0.0, 1.0)), "finite 2x2"),
    ],
)
def test_bad_initial_covariance_is_named(
    cov: tuple[tuple[float, float], tuple[float, float]], message: str
) -> None:
    with pytest.raises(AnalyticsInputError, match=message):
        KalmanHedge(initial_cov=cov)


def test_bad_initial_state_is_named() -> None:
    with pytest.raises(AnalyticsInputError, match="initial_state"):
        KalmanHedge(initial_state=(math.inf, 1.0))
