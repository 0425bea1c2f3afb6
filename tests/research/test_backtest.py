"""The money backtest: each trade's P&L recomputed from its fills, fees and quantities, fills
at the next bar's close moved by the slippage, equity = capital + cumulative P&L, and no
look-ahead by prefix invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spreadbus.research.backtest import BacktestParams, run_backtest

T0 = 1_795_000_000_000
BAR_MS = 60_000


def _pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = 20 + 0.05 x + OU spread (half-life ~ 15 bars), x a walk near 60,000."""
    rng = np.random.default_rng(seed)
    x = 60_000.0 * np.exp(np.cumsum(rng.normal(0.0, 8e-4, n)))
    s = np.zeros(n)
    phi = 0.5 ** (1 / 15)
    for t in range(1, n):
        s[t] = phi * s[t - 1] + rng.normal(0.0, 3.0)
    y = 20.0 + 0.05 * x + s
    return T0 + BAR_MS * np.arange(n), y, x


PARAMS = [
    BacktestParams(window=60, entry_z=1.5, exit_z=0.3, stop_z=3.5, max_hold_bars=40,
                   fee_bps=2.0, slippage_bps=1.5, capital=25_000.0),
    BacktestParams(hedge="kalman", window=80, entry_z=1.5, exit_z=0.0, fee_bps=1.0,
                   slippage_bps=0.5, capital=1_000.0),
]  # fmt: skip


@pytest.mark.parametrize("params", PARAMS, ids=["ols", "kalman"])
def test_trade_accounting_recomputed_from_fills(params: BacktestParams) -> None:
    """Tolerances: relative 1e-9 of the capital on money, 1e-12 relative on prices."""
    ts, y, x = _pair(1500, seed=11)
    out = run_backtest(ts, y, x, params)
    trades = out["trades"]
    assert isinstance(trades, list)
    assert len(trades) >= 10
    index = {int(t): i for i, t in enumerate(ts)}
    fee, slip, cap = params.fee_bps * 1e-4, params.slippage_bps * 1e-4, params.capital
    total = 0.0
    for trade in trades:
        i, j = index[trade["entry_ms"]], index[trade["exit_ms"]]
        qy, qx = trade["qty_y"], trade["qty_x"]
        # beta-neutral, gross notional = capital at the entry bar's closes
        assert qx == pytest.approx(-trade["beta"] * qy, rel=1e-12)
        assert abs(qy) * y[i] + abs(qx) * x[i] == pytest.approx(cap, rel=1e-12)
        assert (qy > 0) == (trade["side"] == "long")
        # fills: that bar's close, worse by the slippage (buy above, sell below)
        assert trade["entry_y"] == pytest.approx(y[i] * (1 + math.copysign(slip, qy)), rel=1e-12)
        assert trade["entry_x"] == pytest.approx(x[i] * (1 + math.copysign(slip, qx)), rel=1e-12)
        assert trade["exit_y"] == pytest.approx(y[j] * (1 - math.copysign(slip, qy)), rel=1e-12)
        assert trade["exit_x"] == pytest.approx(x[j] * (1 - math.copysign(slip, qx)), rel=1e-12)
        fees = fee * (
            abs(qy) * (trade["entry_y"] + trade["exit_y"])
            + abs(qx) * (trade["entry_x"] + trade["exit_x"])
        )
        assert trade["fees"] == pytest.approx(fees, rel=1e-9)
        gross = qy * (trade["exit_y"] - trade["entry_y"])
        gross += qx * (trade["exit_x"] - trade["entry_x"])
        assert trade["pnl"] == pytest.approx(gross - fees, abs=1e-9 * cap)
        total += trade["pnl"]
    equity = out["equity"]
    assert isinstance(equity, list)
    assert equity[-1][1] == pytest.approx(cap + total, abs=1e-9 * cap)
    # between trades the equity is exactly the capital plus the closed trades' P&L
    closed = 0.0
    exits = {index[t["exit_ms"]]: t["pnl"] for t in trades}
    entries = {index[t["entry_ms"]] for t in trades}
    flat = True
    for k, (_, value) in enumerate(equity):
        if k in exits:
            closed += exits[k]
            flat = True
        if k in entries:
            flat = False
        if flat:
            assert value == pytest.approx(cap + closed, abs=1e-9 * cap)
    stats = out["stats"]
    assert isinstance(stats, dict)
    assert stats["n_trades"] == len(trades)
    assert stats["fees_paid"] == pytest.approx(sum(t["fees"] for t in trades), rel=1e-9)
    assert stats["win_rate"] == sum(t["pnl"] > 0 for t in trades) / len(trades)


def test_decisions_use_the_previous_bar_and_hold_limits() -> None:
    """An entry at bar i follows a z-score past the band at bar i - 1 (not at bar i); no trade
    is held longer than max_hold_bars, and a time exit holds exactly that long."""
    ts, y, x = _pair(1500, seed=12)
    params = PARAMS[0]
    out = run_backtest(ts, y, x, params)
    z = [v for _, v in out["zscore"]]  # type: ignore[attr-defined]
    index = {int(t): i for i, t in enumerate(ts)}
    reasons = set()
    for trade in out["trades"]:  # type: ignore[attr-defined]
        i = index[trade["entry_ms"]]
        if trade["side"] == "long":
            assert z[i - 1] < -params.entry_z
        else:
            assert z[i - 1] > params.entry_z
        assert trade["bars"] <= params.max_hold_bars
        if trade["reason"] == "time":
            assert trade["bars"] == params.max_hold_bars
        reasons.add(trade["reason"])
    assert "time" in reasons and "exit" in reasons


@pytest.mark.parametrize("params", PARAMS, ids=["ols", "kalman"])
def test_prefix_invariance(params: BacktestParams) -> None:
    """The first k bars alone give exactly the full run's trades that ended before bar k - 1
    (the prefix closes whatever is open at its last bar, reason "end"), and the same equity
    up to bar k - 2: nothing after a bar changes a decision made at it."""
    ts, y, x = _pair(1200, seed=13)
    full = run_backtest(ts, y, x, params)
    for k in (150, 333, 700, 1001):
        part = run_backtest(ts[:k], y[:k], x[:k], params)
        last = int(ts[k - 1])
        done = [t for t in full["trades"] if t["exit_ms"] < last]  # type: ignore[attr-defined]
        mine = [t for t in part["trades"] if t["reason"] != "end"]  # type: ignore[attr-defined]
        assert mine == done
        assert part["equity"][: k - 1] == full["equity"][: k - 1]  # type: ignore[index]
        assert part["zscore"] == full["zscore"][:k]  # type: ignore[index]


def test_bad_parameters_are_named() -> None:
    ts, y, x = _pair(200, seed=1)
    with pytest.raises(ValueError, match="capital"):
        run_backtest(ts, y, x, BacktestParams(capital=0.0))
    with pytest.raises(ValueError, match="exit_z"):
        run_backtest(ts, y, x, BacktestParams(entry_z=1.0, exit_z=1.5))
    with pytest.raises(ValueError, match="slippage_bps"):
        run_backtest(ts, y, x, BacktestParams(slippage_bps=-1.0))
    with pytest.raises(ValueError, match="too few"):
        run_backtest(ts[:30], y[:30], x[:30], BacktestParams(window=60))


def test_holding_time_is_set_against_the_noise_robust_half_life() -> None:
    """A spread with a known OU half-life (30 bars) seen through observation noise: the
    reported half-life's 90% interval holds the truth, and the plain AR(1) reads the noise
    as fast reversion (biased low), which is why it is only reported beside it."""
    rng = np.random.default_rng(11)
    n, true_half_life = 3000, 30.0
    phi = 0.5 ** (1.0 / true_half_life)
    latent = np.zeros(n)
    for i in range(1, n):
        latent[i] = phi * latent[i - 1] + rng.normal(0.0, 0.002)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    y = 50.0 + 0.8 * x + 100.0 * (latent + rng.normal(0.0, 0.006, n))  # noise ~ latent sd
    ts = np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000
    stats = run_backtest(ts, y, x, BacktestParams())["stats"]
    assert isinstance(stats, dict)
    assert stats["half_life_lo_bars"] <= true_half_life <= stats["half_life_hi_bars"]
    assert abs(stats["half_life_bars"] / true_half_life - 1) < 0.35
    assert stats["half_life_ar1_bars"] < 0.6 * true_half_life
    assert stats["half_life_s"] == stats["half_life_bars"] * 60
