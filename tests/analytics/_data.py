"""Synthetic market data shared by the analytics tests: realistic price paths, not noise.

Hypothesis draws the *parameters* of a path (seed, length, price level up to 1e5, volatility,
hedge exponent, noise) rather than individual prices: independent random prices would make
ill-conditioned windows (three nearly equal floats) where no two correct algorithms agree to
1e-9, which tests rounding luck rather than the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

Prices = NDArray[np.float64]


@dataclass(frozen=True)
class PairSpec:
    seed: int
    n: int
    x_level: float
    y_level: float
    vol: float
    exponent: float
    noise: float

    def build(self) -> tuple[Prices, Prices]:
        """(y, x): x a geometric random walk, y ~ x**exponent with relative noise."""
        rng = np.random.default_rng(self.seed)
        log_x = np.cumsum(rng.normal(0.0, self.vol, self.n))
        x = self.x_level * np.exp(log_x)
        y = self.y_level * np.exp(self.exponent * log_x + rng.normal(0.0, self.noise, self.n))
        return y, x


@st.composite
def pair_specs(draw: st.DrawFn, min_n: int = 3, max_n: int = 300) -> PairSpec:
    vol = draw(st.floats(1e-4, 2e-2))
    return PairSpec(
        seed=draw(st.integers(0, 2**32 - 1)),
        n=draw(st.integers(min_n, max_n)),
        x_level=draw(st.floats(1.0, 1e5)),
        y_level=draw(st.floats(1.0, 1e5)),
        vol=vol,
        exponent=draw(st.sampled_from([-1.5, -0.5, 0.5, 1.0, 2.0])),
        # noise at most the volatility: the hedge explains at least half of y's moves
        noise=draw(st.floats(vol * 1e-3, vol)),
    )


def ou_path(seed: int, n: int, half_life: float, sigma: float = 1.0, mean: float = 0.0) -> Prices:
    """Exact discretisation of an Ornstein-Uhlenbeck process sampled once per bar."""
    rng = np.random.default_rng(seed)
    phi = 0.5 ** (1.0 / half_life)
    shocks = rng.normal(0.0, sigma, n)
    path = np.empty(n)
    level = 0.0
    for i in range(n):
        level = phi * level + shocks[i]
        path[i] = level
    return path + mean


def cointegrated_pair(
    seed: int, n: int, beta: float = 0.035, alpha: float = 150.0, half_life: float = 10.0
) -> tuple[Prices, Prices]:
    """(y, x) with x a BTC-like walk near 98,000 and y = alpha + beta x + an OU spread."""
    rng = np.random.default_rng(seed)
    x = 98_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    spread = ou_path(seed + 1, n, half_life, sigma=2.0)
    return alpha + beta * x + spread, x
