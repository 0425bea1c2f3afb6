"""A two-leg z-score mean-reversion backtest with fees and no look-ahead.

Timeline of one bar ``t`` (prices are bar closes):

1. Mark to market: equity changes by ``units_y * (y_t - y_{t-1}) + units_x * (x_t - x_{t-1})``.
2. Execute the order decided at ``t - 1`` at the prices of ``t``, paying fees.
3. Observe ``(y_t, x_t)``: update the hedge and the z-score, decide the order for ``t + 1``.

So a signal computed from bar ``t`` can only earn from ``t + 1`` onwards: no look-ahead. The
last bar closes every position (reason ``"end"``) and opens none, so the result includes all
fees.

Signal: ``hedge="ols"``: rolling OLS over the last ``window`` bars (y on x with intercept);
``z_t`` is the latest residual divided by the sample std (ddof=1) of the window's residuals.
``hedge="kalman"``: ``z_t = spread_t / spread_std_t`` from :class:`KalmanHedge` (forecast
error over its standard deviation). No signal during the first ``window`` bars.

Rule: flat -> short the spread when ``z > entry_z``, long when ``z < -entry_z``. Long exits when
``z >= -exit_z`` and stops when ``z < -stop_z``; short mirrors it. An exit past the opposite
entry band flips the position in one order. After a stop, no new entry until ``|z| <
entry_z`` (otherwise the stop would re-open at once). ``max_hold`` (bars, optional) closes a
trade held that long (reason ``"time"``), with the same wait before the next entry. When ``z``
is undefined (a flat window) the position is kept.

Accounting, in units of a capital of 1 that is never compounded:

- Entering with hedge ``beta`` at prices ``(y, x)`` holds ``units_y = side / (y + |beta| x)``
  and ``units_x = -beta * units_y``: the gross notional of both legs is exactly 1 at entry.
  The legs are fixed for the life of the trade (the hedge is not rebalanced).
- Slippage: each leg fills ``slippage_bps * 1e-4`` worse than the bar's close (a buy above,
  a sell below); the trade's ``entry_*``/``exit_*`` are those fills, and its ``pnl`` is
  ``units_y (exit_y - entry_y) + units_x (exit_x - entry_x)`` at the fills.
- Fees: ``fee_bps * 1e-4`` times the notional traded on each leg at the fill prices, at entry
  (``|units_y| y + |units_x| x`` ~ 1) and at exit (same units, exit fills).
- ``equity`` starts at 1.0 and adds P&L minus fees, marked at bar closes in between: after
  the last bar it is exactly 1 plus the sum of the trades' ``pnl - fees``;
  ``total_return = equity[-1] - 1``.
- ``sharpe`` / ``sortino`` use the per-bar equity changes (returns on the capital of 1), all
  bars included, annualised with ``periods_per_year``; 0.0 when equity never moved.
- ``max_drawdown``: largest fall from a running equity peak, as a fraction of that peak.
- ``turnover``: total notional traded over the run in multiples of the capital (a round trip
  is about 2).
- ``win_rate``: share of closed trades whose P&L net of both fees is > 0 (0.0 with no trades).
- ``positions[t]``: the side held after bar ``t``'s execution (+1 long spread = long y,
  short ``beta`` x; -1 short spread; 0 flat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from spreadbus.analytics._validate import (
    AnalyticsInputError,
    ArrayLike,
    FloatArray,
    as_pair,
    require_choice,
    require_finite_number,
    require_positive,
    require_window,
)
from spreadbus.analytics.hedge import RollingOLS
from spreadbus.analytics.kalman import Cov2, KalmanHedge
from spreadbus.analytics.risk import sharpe_ratio, sortino_ratio

__all__ = ["BacktestResult", "Trade", "backtest"]

HedgeKind = Literal["ols", "kalman"]
ExitReason = Literal["exit", "stop", "time", "end"]

MINUTES_PER_YEAR = 365 * 24 * 60


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip: entered at bar ``entry_index``, left at bar ``exit_index``."""

    side: int
    entry_index: int
    exit_index: int
    beta: float
    units_y: float
    units_x: float
    entry_y: float
    entry_x: float
    exit_y: float
    exit_x: float
    pnl: float  # gross, before fees
    fees: float
    reason: ExitReason

    @property
    def net_pnl(self) -> float:
        return self.pnl - self.fees


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Outcome of :func:`backtest`; the module docstring defines every field."""

    equity: FloatArray
    positions: npt.NDArray[np.int8]
    trades: tuple[Trade, ...]
    total_return: float
    sharpe: float
    sortino: float
    max_drawdown: float
    win_rate: float
    n_trades: int
    turnover: float
    zscores: FloatArray  # the signal at each bar, NaN before it exists


@dataclass
class _OpenTrade:
    side: int
    entry_index: int
    beta: float
    units_y: float
    units_x: float
    entry_y: float
    entry_x: float
    fees: float


class _Signal:
    """The hedge and z-score of the latest bar, from data up to and including that bar."""

    def __init__(
        self,
        hedge: HedgeKind,
        window: int,
        delta: float,
        obs_var: float,
        kalman_start: tuple[float, float],
        kalman_cov: Cov2 | None,
    ) -> None:
        self._hedge = hedge
        self._window = window
        self._ols = RollingOLS(window)
        self._kalman = KalmanHedge(
            delta, obs_var, initial_state=kalman_start, initial_cov=kalman_cov
        )
        self._seen = 0

    def observe(self, y: float, x: float) -> tuple[float, float]:
        """Feed bar ``(y, x)``; return ``(z, beta)``, z NaN while undefined."""
        self._seen += 1
        if self._hedge == "kalman":
            state = self._kalman.update(y, x)
            if self._seen < self._window:
                return math.nan, state.beta
            return state.spread / state.spread_std, state.beta
        ols = self._ols
        ols.update(y, x)
        if self._seen < self._window:
            return math.nan, math.nan
        try:
            fit = ols.fit
        except AnalyticsInputError:
            return math.nan, math.nan
        n = fit.n
        residual_std = fit.resid_std * math.sqrt((n - 2) / (n - 1))
        if residual_std == 0.0:
            return math.nan, fit.beta
        return (y - fit.alpha - fit.beta * x) / residual_std, fit.beta


def _decide(
    side: int, z: float, entry_z: float, exit_z: float, stop_z: float | None, blocked: bool
) -> tuple[int, bool]:
    """Target side for the next bar and whether entries are blocked after a stop."""
    if math.isnan(z):
        return side, blocked
    target = side
    if side == 1:
        if stop_z is not None and z < -stop_z:
            return 0, True
        if z >= -exit_z:
            target = 0
    elif side == -1:
        if stop_z is not None and z > stop_z:
            return 0, True
        if z <= exit_z:
            target = 0
    if target == 0:
        if blocked and abs(z) < entry_z:
            blocked = False
        if not blocked:
            if z > entry_z:
                target = -1
            elif z < -entry_z:
                target = 1
    return target, blocked


def backtest(
    y: ArrayLike,
    x: ArrayLike,
    entry_z: float = 2.0,
    exit_z: float = 0.5,
    window: int = 60,
    hedge: HedgeKind = "ols",
    fee_bps: float = 1.0,
    stop_z: float | None = None,
    *,
    periods_per_year: float = MINUTES_PER_YEAR,
    delta: float = 1e-4,
    obs_var: float = 1e-3,
    slippage_bps: float = 0.0,
    max_hold: int | None = None,
    kalman_start: tuple[float, float] = (0.0, 0.0),
    kalman_cov: Cov2 | None = None,
) -> BacktestResult:
    """Backtest the z-score mean-reversion rule on prices ``y``, ``x`` (module docstring).

    ``periods_per_year`` defaults to 1-minute bars around the clock (crypto); pass
    ``365 * 24 * 3600`` for 1-second bars. ``delta``/``obs_var`` configure the Kalman hedge;
    its defaults suit prices near 100 (see :mod:`spreadbus.analytics.kalman`): for a leg near
    98,000 something like ``delta=1e-10, obs_var=4.0`` gives z-scores that can reach the bands.
    ``kalman_start``/``kalman_cov`` are the filter's initial ``(alpha, beta)`` and its 2x2
    covariance (see :class:`KalmanHedge`; default zero state, zero covariance).
    """
    require_choice(hedge, "hedge", ("ols", "kalman"))
    window = require_window(window, minimum=3)
    entry = require_finite_number(entry_z, "entry_z")
    exit_level = require_finite_number(exit_z, "exit_z")
    fee_rate = require_finite_number(fee_bps, "fee_bps") * 1e-4
    periods = require_finite_number(periods_per_year, "periods_per_year")
    if entry <= 0:
        raise AnalyticsInputError(f"entry_z: must be > 0, got {entry}")
    if exit_level >= entry:
        raise AnalyticsInputError(f"exit_z: must be below entry_z={entry}, got {exit_level}")
    stop = None if stop_z is None else require_finite_number(stop_z, "stop_z")
    if stop is not None and stop <= entry:
        raise AnalyticsInputError(f"stop_z: must be above entry_z={entry}, got {stop}")
    if fee_rate < 0:
        raise AnalyticsInputError(f"fee_bps: must be >= 0, got {fee_bps}")
    slip = require_finite_number(slippage_bps, "slippage_bps") * 1e-4
    if not 0 <= slip < 1:
        raise AnalyticsInputError(f"slippage_bps: must be in [0, 10000), got {slippage_bps}")
    if max_hold is not None:
        max_hold = require_window(max_hold, minimum=1, name="max_hold")
    if periods <= 0:
        raise AnalyticsInputError(f"periods_per_year: must be > 0, got {periods}")
    y_arr, x_arr = as_pair(y, x, min_len=window + 2)
    require_positive(y_arr, "y")
    require_positive(x_arr, "x")

    n = y_arr.size
    ys = y_arr.tolist()
    xs = x_arr.tolist()
    signal = _Signal(hedge, window, delta, obs_var, kalman_start, kalman_cov)
    equity = np.empty(n)
    positions = np.zeros(n, dtype=np.int8)
    zscores = np.full(n, np.nan)
    trades: list[Trade] = []
    current: _OpenTrade | None = None
    target = 0
    pending_beta = math.nan
    blocked = False
    timed_out = False
    value = 1.0
    traded = 0.0

    for t in range(n):
        y_t = ys[t]
        x_t = xs[t]
        if current is not None:
            value += current.units_y * (y_t - ys[t - 1]) + current.units_x * (x_t - xs[t - 1])
        if t == n - 1:
            target = 0
        side = 0 if current is None else current.side
        if target != side:
            if current is not None:
                # closing sells what was bought: the fill moves against the held units' sign
                fill_y = y_t * (1.0 - math.copysign(slip, current.units_y))
                fill_x = x_t * (1.0 - math.copysign(slip, current.units_x))
                notional = abs(current.units_y) * fill_y + abs(current.units_x) * fill_x
                fee = fee_rate * notional
                value -= fee + slip * (abs(current.units_y) * y_t + abs(current.units_x) * x_t)
                traded += notional
                reason: ExitReason = "end" if t == n - 1 else ("stop" if blocked else "exit")
                if timed_out and t < n - 1:
                    reason = "time"
                trades.append(_close(current, t, fill_y, fill_x, fee, reason))
                current = None
            if target != 0:
                units_y = target / (y_t + abs(pending_beta) * x_t)
                units_x = -pending_beta * units_y
                fill_y = y_t * (1.0 + math.copysign(slip, units_y))
                fill_x = x_t * (1.0 + math.copysign(slip, units_x))
                notional = abs(units_y) * fill_y + abs(units_x) * fill_x
                fee = fee_rate * notional
                value -= fee + slip * (abs(units_y) * y_t + abs(units_x) * x_t)
                traded += notional
                current = _OpenTrade(target, t, pending_beta, units_y, units_x, fill_y, fill_x, fee)
        equity[t] = value
        positions[t] = 0 if current is None else current.side
        z, beta = signal.observe(y_t, x_t)
        zscores[t] = z
        target, blocked = _decide(int(positions[t]), z, entry, exit_level, stop, blocked)
        timed_out = False
        if (
            max_hold is not None
            and current is not None
            and target == current.side
            and t - current.entry_index + 1 >= max_hold
        ):
            target, blocked, timed_out = 0, True, True
        pending_beta = beta

    per_bar = np.diff(equity)
    peaks = np.maximum.accumulate(equity)
    wins = sum(1 for trade in trades if trade.net_pnl > 0.0)
    return BacktestResult(
        equity=equity,
        positions=positions,
        trades=tuple(trades),
        total_return=float(equity[-1] - 1.0),
        sharpe=sharpe_ratio(per_bar, periods),
        sortino=sortino_ratio(per_bar, periods),
        max_drawdown=float(np.max((peaks - equity) / peaks)),
        win_rate=wins / len(trades) if trades else 0.0,
        n_trades=len(trades),
        turnover=traded,
        zscores=zscores,
    )


def _close(
    trade: _OpenTrade, t: int, y_t: float, x_t: float, fee: float, reason: ExitReason
) -> Trade:
    pnl = trade.units_y * (y_t - trade.entry_y) + trade.units_x * (x_t - trade.entry_x)
    return Trade(
        side=trade.side,
        entry_index=trade.entry_index,
        exit_index=t,
        beta=trade.beta,
        units_y=trade.units_y,
        units_x=trade.units_x,
        entry_y=trade.entry_y,
        entry_x=trade.entry_x,
        exit_y=y_t,
        exit_x=x_t,
        pnl=pnl,
        fees=trade.fees + fee,
        reason=reason,
    )
