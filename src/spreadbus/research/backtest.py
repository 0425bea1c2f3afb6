"""A pair backtest on bar closes, in money: :func:`spreadbus.analytics.backtest` sized to a
capital, with its trades, equity, drawdown and summary statistics as plain JSON-able values.

Timing is the library's: the decision made at the close of bar ``t`` (data up to ``t`` only)
fills at bar ``t + 1``; sizing is beta-neutral (``qty_x = -beta qty_y``, gross notional =
capital at entry); fees and slippage are in bps per leg per side.

Kalman hedge: the filter runs on prices divided by their first value (both legs near 1), so
its settings mean the same for a leg at 98,000 as for one at 2, started from the OLS fit of
the first ``window`` bars and that fit's coefficient covariance (that data precedes every
decision: no look-ahead), with the observation noise of that fit and a state drift of
``noise / window^2`` per bar (memory of about ``window`` bars). Scaling a price by a constant
scales the units held by its inverse, so notional, P&L and fees are those of the real prices;
trades are reported in real units.

Every money figure is in the capital's unit. A trade's ``pnl`` is net of its fees:
``qty_y (exit_y - entry_y) + qty_x (exit_x - entry_x) - fees`` at the fill prices, and the
equity after the last bar is ``capital`` plus the sum of the trades' ``pnl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from spreadbus.analytics import AnalyticsInputError, backtest, half_life, ols_hedge, spread
from spreadbus.analytics.backtest import BacktestResult
from spreadbus.analytics.meanrev import ou_fit
from spreadbus.analytics.resample import BAR_MILLISECONDS, Rule

HedgeKind = Literal["ols", "kalman"]
OU_POINTS: Final = 3_000  # the OU half-life's ML fit is slow: at most the latest bars
PERIODS_PER_YEAR: Final[dict[str, float]] = {
    bar: 365 * 24 * 3_600_000 / ms for bar, ms in BAR_MILLISECONDS.items()
}
KALMAN_NOISE_FLOOR: Final = 1e-12  # a warm-up window that fits perfectly still gets noise


@dataclass(frozen=True, slots=True)
class BacktestParams:
    """What the user chooses; ``max_hold_bars`` and ``stop_z`` are optional."""

    bar: Rule = "1m"
    hedge: HedgeKind = "ols"
    window: int = 60
    entry_z: float = 2.0
    exit_z: float = 0.5
    stop_z: float | None = None
    max_hold_bars: int | None = None
    fee_bps: float = 1.0
    slippage_bps: float = 0.0
    capital: float = 10_000.0


def kalman_settings(y_n: np.ndarray, x_n: np.ndarray, window: int) -> dict[str, object]:
    """The filter's settings for prices near 1 (module docstring): started from the OLS fit of
    the first ``window`` bars with that fit's coefficient covariance (so the filter keeps
    learning the hedge as recursive least squares would), the fit's residual variance as
    observation noise, and a drift of ``noise / window^2`` per bar."""
    fit = ols_hedge(y_n[:window], x_n[:window])
    noise = max(fit.resid_std**2, KALMAN_NOISE_FLOOR)
    design = np.column_stack([np.ones(window), x_n[:window]])
    cov = noise * np.linalg.inv(design.T @ design)
    cov = (cov + cov.T) / 2  # exactly symmetric
    drift = noise / window**2
    return {
        "delta": drift / (1.0 + drift),
        "obs_var": noise,
        "kalman_start": (fit.alpha, fit.beta),
        "kalman_cov": ((cov[0, 0], cov[0, 1]), (cov[1, 0], cov[1, 1])),
    }


def simulate(
    y: np.ndarray, x: np.ndarray, params: BacktestParams
) -> tuple[BacktestResult, np.ndarray, np.ndarray]:
    """The library backtest on prices divided by their first value: ``(result, y_n, x_n)``
    (module docstring); :class:`AnalyticsInputError` names bad input."""
    if not (params.capital > 0 and math.isfinite(params.capital)):
        raise AnalyticsInputError(f"capital: must be > 0, got {params.capital}")
    if len(y) != len(x) or len(y) == 0:
        raise AnalyticsInputError("y and x must be non-empty and of the same length")
    y_ref, x_ref = float(y[0]), float(x[0])
    if not (y_ref > 0 and x_ref > 0):
        raise AnalyticsInputError("prices must be > 0")
    y_n = np.asarray(y, dtype=np.float64) / y_ref
    x_n = np.asarray(x, dtype=np.float64) / x_ref
    extra: dict[str, object] = {}
    if params.hedge == "kalman" and len(y) >= params.window >= 3:
        extra = kalman_settings(y_n, x_n, params.window)
    result = backtest(
        y_n,
        x_n,
        entry_z=params.entry_z,
        exit_z=params.exit_z,
        window=params.window,
        hedge=params.hedge,
        fee_bps=params.fee_bps,
        stop_z=params.stop_z,
        periods_per_year=PERIODS_PER_YEAR[params.bar],
        slippage_bps=params.slippage_bps,
        max_hold=params.max_hold_bars,
        **extra,  # type: ignore[arg-type]
    )
    return result, y_n, x_n


def run_backtest(
    ts_ms: np.ndarray, y: np.ndarray, x: np.ndarray, params: BacktestParams
) -> dict[str, object]:
    """Backtest one pair's aligned bar closes; :class:`AnalyticsInputError` names bad input.

    Returns ``{"stats", "trades", "equity", "drawdown", "zscore", "positions"}`` with series as
    ``[[ms, value], ...]`` (NaN z-scores as ``None``)."""
    if len(ts_ms) != len(y):
        raise AnalyticsInputError("ts_ms, y and x must have the same length")
    result, y_n, x_n = simulate(y, x, params)
    y_ref, x_ref = float(y[0]), float(x[0])
    return _report(np.asarray(ts_ms, dtype=np.int64), y_n, x_n, y_ref, x_ref, result, params)


def _report(
    ts_ms: np.ndarray,
    y_n: np.ndarray,
    x_n: np.ndarray,
    y_ref: float,
    x_ref: float,
    result: BacktestResult,
    params: BacktestParams,
) -> dict[str, object]:
    capital = params.capital
    bar_ms = BAR_MILLISECONDS[params.bar]
    times = ts_ms.tolist()
    trades = []
    for trade in result.trades:
        trades.append(
            {
                "entry_ms": times[trade.entry_index],
                "exit_ms": times[trade.exit_index],
                "side": "long" if trade.side > 0 else "short",
                "qty_y": trade.units_y * capital / y_ref,
                "qty_x": trade.units_x * capital / x_ref,
                "entry_y": trade.entry_y * y_ref,
                "entry_x": trade.entry_x * x_ref,
                "exit_y": trade.exit_y * y_ref,
                "exit_x": trade.exit_x * x_ref,
                "beta": trade.beta * y_ref / x_ref,
                "fees": trade.fees * capital,
                "pnl": trade.net_pnl * capital,
                "reason": trade.reason,
                "bars": trade.exit_index - trade.entry_index,
            }
        )
    equity = result.equity * capital
    peaks = np.maximum.accumulate(equity)
    drawdown = (peaks - equity) / peaks
    holding = [t["bars"] for t in trades]
    avg_bars = float(np.mean(holding)) if holding else 0.0
    stats = {
        "bars": len(times),
        "bar": params.bar,
        "total_return": result.total_return,
        "final_equity": float(equity[-1]),
        "sharpe": result.sharpe,
        "sortino": result.sortino,
        "max_drawdown": result.max_drawdown,
        "n_trades": result.n_trades,
        "win_rate": result.win_rate,
        "avg_holding_bars": avg_bars,
        "avg_holding_s": avg_bars * bar_ms / 1000,
        **_half_lives(y_n, x_n),
        "turnover": result.turnover,
        "fees_paid": float(sum(t.fees for t in result.trades) * capital),
    }
    stats["half_life_s"] = stats["half_life_bars"] * bar_ms / 1000  # type: ignore[operator]
    return {
        "stats": {k: _json_number(v) for k, v in stats.items()},
        "trades": trades,
        "equity": [[t, float(v)] for t, v in zip(times, equity.tolist(), strict=True)],
        "drawdown": [[t, float(v)] for t, v in zip(times, drawdown.tolist(), strict=True)],
        "zscore": [
            [t, None if math.isnan(z) else z]
            for t, z in zip(times, result.zscores.tolist(), strict=True)
        ],
        "positions": [[t, int(p)] for t, p in zip(times, result.positions.tolist(), strict=True)],
    }


def _half_lives(y_n: np.ndarray, x_n: np.ndarray) -> dict[str, float]:
    """Half-life in bars of the whole sample's OLS spread, to set the holding time against:
    the engine's noise-robust OU fit (over the last :data:`OU_POINTS` bars, with its 90%
    interval) and the plain AR(1) one for comparison; ``inf`` without mean reversion."""
    out = dict.fromkeys(
        ("half_life_bars", "half_life_lo_bars", "half_life_hi_bars", "half_life_ar1_bars"),
        math.nan,
    )
    try:
        fit = ols_hedge(y_n, x_n)
        series = spread(y_n, x_n, fit.beta, fit.alpha)
        out["half_life_ar1_bars"] = half_life(series)
        ou = ou_fit(series[-OU_POINTS:])
    except AnalyticsInputError:
        return out
    out["half_life_bars"] = ou.half_life
    out["half_life_lo_bars"], out["half_life_hi_bars"] = ou.half_life_lo, ou.half_life_hi
    return out


def _json_number(value: object) -> object:
    """JSON has no NaN or infinity: those become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
