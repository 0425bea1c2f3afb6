"""The reference for the Kalman hedge's tests: Chan's equations with numpy matrices and the
plain ``P = R - K h R`` update, from a given state and covariance (zero by default)."""

from __future__ import annotations

import math

import numpy as np


def textbook_kalman(
    y: np.ndarray,
    x: np.ndarray,
    delta: float,
    obs_var: float,
    theta0: np.ndarray | None = None,
    cov0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(alpha, beta, spread, spread_std)`` per step; the spread is the forecast error."""
    theta = np.zeros(2) if theta0 is None else theta0.astype(float).copy()
    cov = np.zeros((2, 2)) if cov0 is None else cov0.astype(float).copy()
    state_cov = delta / (1.0 - delta) * np.eye(2)
    rows = []
    for y_t, x_t in zip(y, x, strict=True):
        prior = cov + state_cov
        h = np.array([1.0, x_t])
        q = h @ prior @ h + obs_var
        error = y_t - h @ theta
        gain = prior @ h / q
        theta = theta + gain * error
        cov = prior - np.outer(gain, h @ prior)
        rows.append((theta[0], theta[1], error, math.sqrt(q)))
    alpha, beta, spread, spread_std = np.array(rows).T
    return alpha, beta, spread, spread_std
