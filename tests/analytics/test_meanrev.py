"""ou_fit: the OU half-life under observation noise, against a known truth and statsmodels.

The truth is synthetic: an exact AR(1) (an OU sampled per bar) plus white noise, whose
half-life, latent sd and noise sd are set by the test. Tolerances are stated per check.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.signal import lfilter
from statsmodels.tsa.arima.model import ARIMA

from spreadbus import analytics as an


def _ou_plus_noise(seed: int, n: int, half_life: float, sd: float, noise_sd: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phi = 0.5 ** (1.0 / half_life)
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), n)
    latent: np.ndarray = lfilter([1.0], [1.0, -phi], shocks, zi=[phi * rng.normal(0.0, sd)])[0]
    return latent + rng.normal(0.0, noise_sd, n) + 50.0


def test_recovers_half_life_and_both_sds_where_ar1_is_biased() -> None:
    """20 bars half-life, noise sd 0.6 of the latent sd, 3600 bars: the situation of the
    sim's BNB/BTC pair. ML's sampling sd of the half-life here is ~2 bars: 15% tolerance on
    one path, the interval must hold the truth, and AR(1) must be off by more than 30%."""
    values = _ou_plus_noise(seed=3, n=3600, half_life=20.0, sd=1.0, noise_sd=0.6)
    fit = an.ou_fit(values)
    assert fit.half_life == pytest.approx(20.0, rel=0.15)
    assert fit.half_life_lo <= 20.0 <= fit.half_life_hi
    assert fit.spread_sd == pytest.approx(1.0, rel=0.10)
    assert fit.noise_sd == pytest.approx(0.6, rel=0.10)
    assert fit.nobs == 3600 and fit.level == 0.90
    assert an.half_life_ar1(values) < 0.7 * 20.0


def test_phi_equals_statsmodels_arima_by_another_algorithm() -> None:
    """The same ARMA(1,1) likelihood maximised by statsmodels' innovations algorithm (a
    different code path from our state-space fit): phi to 1e-4, its standard error to 5%."""
    values = _ou_plus_noise(seed=4, n=1500, half_life=12.0, sd=2.0, noise_sd=1.0)
    fit = an.ou_fit(values)
    centred = values - values.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ARIMA(centred, order=(1, 0, 1), trend="n").fit(method="innovations_mle")
    assert fit.phi == pytest.approx(float(ref.params[0]), abs=1e-4)
    assert fit.ma == pytest.approx(float(ref.params[1]), abs=1e-3)
    assert fit.phi_se == pytest.approx(float(ref.bse[0]), rel=0.05)
    assert fit.half_life == pytest.approx(an.half_life_of_phi(float(ref.params[0])), rel=1e-3)


def test_interval_is_calibrated_on_short_windows() -> None:
    """30 paths of 300 bars, half-life 10: the 90% interval holds the truth in at least 80%
    (binomial sd ~5% around 90%), and every interval is ordered lo <= estimate <= hi."""
    hits = 0
    for seed in range(30):
        fit = an.ou_fit(_ou_plus_noise(seed, n=300, half_life=10.0, sd=1.0, noise_sd=0.5))
        assert fit.half_life_lo <= fit.half_life <= fit.half_life_hi
        hits += fit.half_life_lo <= 10.0 <= fit.half_life_hi
    assert hits >= 24


def test_a_random_walk_gets_an_interval_past_its_window() -> None:
    """No reversion: the interval's top reaches beyond the 300 bars seen (inf when the Wald
    interval crosses phi = 1; the Dickey-Fuller bias can stop it just short)."""
    walk = np.cumsum(np.random.default_rng(9).normal(size=300)) + 100.0
    fit = an.ou_fit(walk)
    assert fit.half_life_hi > 300.0
    assert fit.half_life > 20.0


def test_half_life_of_phi_edges() -> None:
    assert an.half_life_of_phi(0.5) == pytest.approx(1.0)
    assert an.half_life_of_phi(1.0) == math.inf
    assert an.half_life_of_phi(1.2) == math.inf
    assert an.half_life_of_phi(0.0) == 0.0
    assert an.half_life_of_phi(-0.3) == 0.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.arange(10.0), "too few points"),
        (np.full(100, 3.0), "constant"),
        (np.r_[np.arange(50.0), np.nan], "NaN"),
    ],
)
def test_bad_input_is_named(values: np.ndarray, message: str) -> None:
    with pytest.raises(an.AnalyticsInputError, match=message):
        an.ou_fit(values)


def test_level_must_be_a_probability() -> None:
    with pytest.raises(an.AnalyticsInputError, match="level"):
        an.ou_fit(np.arange(100.0) % 7, level=1.5)
