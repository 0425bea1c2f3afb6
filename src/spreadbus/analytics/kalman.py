"""Dynamic hedge ratio: the Kalman filter for a regression whose coefficients random-walk.

Model (the standard dynamic linear regression, as in E. Chan, *Algorithmic Trading*, ch. 3)::

    state        theta_t = (alpha_t, beta_t),   theta_t = theta_{t-1} + w_t,  w_t ~ N(0, Vw I)
    observation  y_t = alpha_t + beta_t * x_t + e_t,                        e_t ~ N(0, obs_var)
    Vw = delta / (1 - delta)

Each step predicts ``R = P + Vw I``, forms the one-step forecast error ``spread_t = y_t -
(alpha + beta x_t)`` with variance ``Q_t = h R h' + obs_var`` (``h = (1, x_t)``), then updates
the state with gain ``K = R h' / Q_t``. By default the filter starts from ``theta = 0, P = 0``,
so the first step already predicts with ``R = Vw I``; ``initial_state = (alpha0, beta0)`` and
``initial_cov`` (2x2, symmetric positive semi-definite) start it elsewhere, e.g. from an OLS fit
of a warm-up window with that fit's coefficient covariance, so that raw prices can be filtered
without the slope first having to climb from zero.

``spread`` is the *forecast* error, computed with coefficients estimated from data before
``t``: trading on it involves no look-ahead, and ``spread / spread_std`` is the filter's own
z-score. ``alpha`` and ``beta`` are the *filtered* coefficients after seeing ``t``.

``delta`` sets how fast the hedge may drift (larger = faster, noisier); ``obs_var`` is in units
of ``y`` squared, so the defaults (from Chan, tuned for ETF prices near 100) trust each
observation a great deal for legs priced in thousands: scale ``obs_var`` with the price level,
or filter log prices.

The covariance update uses the Joseph form ``P = (I - K h) R (I - K h)' + K obs_var K'``,
which stays symmetric positive semi-definite in floating point; the shorter ``R - K h R``
subtracts two numbers of size ``R x^2`` and can turn ``P`` indefinite when ``x`` is ~1e5.
Everything is written out in scalars for the 2x2 case: on 2x2 arrays numpy's per-call overhead
costs several times the arithmetic, and the engine runs one update per pair per bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    FloatArray,
    as_pair,
    require_finite_number,
)

__all__ = ["KalmanHedge", "KalmanResult", "KalmanState", "kalman_hedge"]


@dataclass(frozen=True, slots=True)
class KalmanState:
    """Filter output for one observation (see the module docstring for each field)."""

    alpha: float
    beta: float
    spread: float
    spread_std: float


@dataclass(frozen=True, eq=False)
class KalmanResult:
    """Filter output for a whole series, one element per observation."""

    alpha: FloatArray
    beta: FloatArray
    spread: FloatArray
    spread_std: FloatArray


Cov2 = tuple[tuple[float, float], tuple[float, float]]


def _check_start(
    initial_state: tuple[float, float], initial_cov: Cov2 | None
) -> tuple[float, float, float, float, float]:
    """``(alpha0, beta0, p00, p01, p11)`` from the optional start, checked."""
    alpha0, beta0 = (require_finite_number(v, "initial_state") for v in initial_state)
    if initial_cov is None:
        return alpha0, beta0, 0.0, 0.0, 0.0
    cov = np.asarray(initial_cov, dtype=np.float64)
    if cov.shape != (2, 2) or not np.isfinite(cov).all():
        raise AnalyticsInputError("initial_cov: must be a finite 2x2 matrix")
    if cov[0, 1] != cov[1, 0]:
        raise AnalyticsInputError("initial_cov: must be symmetric")
    if cov[0, 0] < 0 or cov[1, 1] < 0 or cov[0, 0] * cov[1, 1] < cov[0, 1] ** 2:
        raise AnalyticsInputError("initial_cov: must be positive semi-definite")
    return alpha0, beta0, float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])


def _check_parameters(delta: float, obs_var: float) -> tuple[float, float]:
    delta = require_finite_number(delta, "delta")
    obs_var = require_finite_number(obs_var, "obs_var")
    if not 0.0 < delta < 1.0:
        raise AnalyticsInputError(f"delta: must be in (0, 1), got {delta}")
    if obs_var <= 0.0:
        raise AnalyticsInputError(f"obs_var: must be > 0, got {obs_var}")
    return delta, obs_var


class KalmanHedge:
    """Streaming form of :func:`kalman_hedge`: same state, same numbers, one point at a time."""

    __slots__ = ("_alpha", "_beta", "_obs_var", "_p00", "_p01", "_p11", "_state_var", "count")

    def __init__(
        self,
        delta: float = 1e-4,
        obs_var: float = 1e-3,
        *,
        initial_state: tuple[float, float] = (0.0, 0.0),
        initial_cov: Cov2 | None = None,
    ) -> None:
        delta, self._obs_var = _check_parameters(delta, obs_var)
        self._state_var = delta / (1.0 - delta)
        start = _check_start(initial_state, initial_cov)
        self._alpha, self._beta, self._p00, self._p01, self._p11 = start
        self.count = 0

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def beta(self) -> float:
        return self._beta

    def update(self, y: float, x: float) -> KalmanState:
        """Filter one observation; returns the forecast error and the updated hedge."""
        if not (math.isfinite(y) and math.isfinite(x)):
            raise AnalyticsInputError(f"update: y and x must be finite, got y={y!r}, x={x!r}")
        y = float(y)
        x = float(x)
        vw = self._state_var
        ve = self._obs_var
        # predict: R = P + Vw I
        r00 = self._p00 + vw
        r01 = self._p01
        r11 = self._p11 + vw
        # forecast error and its variance; R h' = (rh0, rh1)
        rh0 = r00 + r01 * x
        rh1 = r01 + r11 * x
        q = rh0 + rh1 * x + ve
        error = y - (self._alpha + self._beta * x)
        k0 = rh0 / q
        k1 = rh1 / q
        self._alpha += k0 * error
        self._beta += k1 * error
        # Joseph form with A = I - K h = [[1 - k0, -k0 x], [-k1, 1 - k1 x]]
        a00 = 1.0 - k0
        a01 = -k0 * x
        a10 = -k1
        a11 = 1.0 - k1 * x
        # M = A R
        m00 = a00 * r00 + a01 * r01
        m01 = a00 * r01 + a01 * r11
        m10 = a10 * r00 + a11 * r01
        m11 = a10 * r01 + a11 * r11
        # P = M A' + ve K K'
        self._p00 = m00 * a00 + m01 * a01 + ve * k0 * k0
        self._p01 = m00 * a10 + m01 * a11 + ve * k0 * k1
        self._p11 = m10 * a10 + m11 * a11 + ve * k1 * k1
        self.count += 1
        return KalmanState(self._alpha, self._beta, error, math.sqrt(q))


def kalman_hedge(
    y: ArrayLike,
    x: ArrayLike,
    delta: float = 1e-4,
    obs_var: float = 1e-3,
    *,
    initial_state: tuple[float, float] = (0.0, 0.0),
    initial_cov: Cov2 | None = None,
) -> KalmanResult:
    """Run the dynamic-regression filter over whole series (see the module docstring)."""
    y_arr, x_arr = as_pair(y, x, min_len=1)
    filt = KalmanHedge(delta, obs_var, initial_state=initial_state, initial_cov=initial_cov)
    n = y_arr.size
    out = np.empty((4, n), dtype=np.float64)
    for i, (y_i, x_i) in enumerate(zip(y_arr.tolist(), x_arr.tolist(), strict=True)):
        state = filt.update(y_i, x_i)
        out[0, i] = state.alpha
        out[1, i] = state.beta
        out[2, i] = state.spread
        out[3, i] = state.spread_std
    return KalmanResult(alpha=out[0], beta=out[1], spread=out[2], spread_std=out[3])
