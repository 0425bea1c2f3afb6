"""Backtest: no look-ahead, exact fee accounting, and the documented rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.analytics import AnalyticsInputError, BacktestResult, backtest

from ._data import cointegrated_pair


def _spiky_pair(
    spike_bars: list[int], n: int = 600, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """y = 2 + 1.5 x + tiny noise, except that y jumps by +1.0 for exactly one bar at each
    spike. The signal fires on the spike bar and the spread is back to normal one bar later,
    so the move is only capturable by trading at the price that produced the signal."""
    rng = np.random.default_rng(seed)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    y = 2.0 + 1.5 * x + rng.normal(0.0, 0.01, n)
    y[spike_bars] += 1.0
    return y, x


def _pnl_with_look_ahead(result: BacktestResult, y: np.ndarray, x: np.ndarray) -> float:
    """What the same trades would earn entered at the signal bar's prices (cheating)."""
    total = 0.0
    for trade in result.trades:
        signal_bar = trade.entry_index - 1
        total += trade.units_y * (trade.exit_y - y[signal_bar])
        total += trade.units_x * (trade.exit_x - x[signal_bar])
    return total


def test_one_bar_spikes_are_not_captured() -> None:
    """A look-ahead backtest would make > 3% on these spikes; ours makes < 0.1% either way."""
    spikes = list(range(100, 600, 50))
    y, x = _spiky_pair(spikes)
    # entry 4: the 0.01 noise alone reaches |z| > 4 about once in 16,000 bars
    result = backtest(y, x, entry_z=4.0, exit_z=0.5, window=40, fee_bps=0.0)
    assert result.n_trades == len(spikes)
    assert [t.entry_index for t in result.trades] == [k + 1 for k in spikes]  # the bar after
    assert all(t.side == -1 for t in result.trades)  # y spiked up: short the spread
    assert _pnl_with_look_ahead(result, y, x) > 0.03
    assert abs(result.total_return) < 0.001


def test_future_data_never_changes_the_past() -> None:
    """Cutting the series at T leaves every position and equity value before T - 1 as is
    (the last bar of a run is always flattened, so T - 1 itself may differ)."""
    y, x = cointegrated_pair(seed=14, n=800, half_life=8.0)
    for hedge in ("ols", "kalman"):
        # Kalman on x ~ 98,000 needs a tiny delta: Vw * x^2 is the forecast variance it adds
        settings = {"hedge": hedge, "fee_bps": 2.0, "delta": 1e-10, "obs_var": 4.0}
        full = backtest(y, x, window=50, **settings)  # type: ignore[arg-type]
        assert full.n_trades > 5
        for cut in (120, 333, 500, 799):
            part = backtest(y[:cut], x[:cut], window=50, **settings)  # type: ignore[arg-type]
            np.testing.assert_array_equal(part.positions[: cut - 1], full.positions[: cut - 1])
            np.testing.assert_array_equal(part.equity[: cut - 1], full.equity[: cut - 1])
            np.testing.assert_array_equal(part.zscores, full.zscores[:cut])


def test_positions_follow_the_previous_bars_signal() -> None:
    """Every change of position at bar t is what the rule says for z at t - 1."""
    y, x = cointegrated_pair(seed=15, n=1_000, half_life=6.0)
    result = backtest(y, x, entry_z=1.5, exit_z=0.25, window=60, fee_bps=1.0)
    z, pos = result.zscores, result.positions
    assert np.isnan(z[:59]).all()
    assert not pos[:61].any()
    for t in range(1, len(pos) - 1):
        if pos[t] == pos[t - 1]:
            continue
        if pos[t - 1] == 0:
            assert abs(z[t - 1]) > 1.5
            assert pos[t] == -np.sign(z[t - 1])
        elif pos[t - 1] == 1:
            assert z[t - 1] >= -0.25
        else:
            assert z[t - 1] <= 0.25
    assert pos[-1] == 0


def test_fees_cost_exactly_their_rate_on_both_legs_of_both_trades() -> None:
    """One scripted round trip: the fee costs fee_bps * 1e-4 * (entry notional 1 + exit
    notional), to 1e-12 absolute; the trades themselves do not change."""
    y, x = _spiky_pair([300], n=400)
    free = backtest(y, x, entry_z=4.0, window=40, fee_bps=0.0)
    paid = backtest(y, x, entry_z=4.0, window=40, fee_bps=7.5)
    assert free.n_trades == paid.n_trades == 1
    trade = paid.trades[0]
    entry_notional = abs(trade.units_y) * trade.entry_y + abs(trade.units_x) * trade.entry_x
    exit_notional = abs(trade.units_y) * trade.exit_y + abs(trade.units_x) * trade.exit_x
    assert entry_notional == pytest.approx(1.0, rel=1e-15)  # legs sized to a gross of 1
    assert trade.units_x == pytest.approx(-trade.beta * trade.units_y, rel=1e-15)
    expected_fees = 7.5e-4 * (entry_notional + exit_notional)
    assert trade.fees == pytest.approx(expected_fees, abs=1e-15)
    assert free.total_return - paid.total_return == pytest.approx(expected_fees, abs=1e-12)
    assert paid.turnover == pytest.approx(entry_notional + exit_notional, abs=1e-12)
    np.testing.assert_array_equal(free.positions, paid.positions)


def test_equity_is_the_sum_of_trade_pnl_net_of_fees() -> None:
    y, x = cointegrated_pair(seed=16, n=2_000, half_life=10.0)
    result = backtest(y, x, window=100, fee_bps=1.0)
    assert result.n_trades > 10
    net = sum(t.net_pnl for t in result.trades)
    assert result.total_return == pytest.approx(net, abs=1e-12)
    assert result.equity[0] == 1.0
    assert result.equity[-1] == pytest.approx(1.0 + net, abs=1e-12)
    assert result.win_rate == sum(t.net_pnl > 0 for t in result.trades) / result.n_trades
    peaks = np.maximum.accumulate(result.equity)
    assert result.max_drawdown == pytest.approx(float(np.max(1 - result.equity / peaks)), rel=1e-12)
    assert result.trades[-1].reason in ("exit", "end")


def test_mean_reversion_pays_on_a_slow_ou_spread() -> None:
    """Sanity: half-life 20 bars, fees 0: reverting spreads are worth trading a bar late."""
    y, x = cointegrated_pair(seed=17, n=5_000, half_life=20.0)
    result = backtest(y, x, window=200, fee_bps=0.0)
    assert result.total_return > 0
    assert result.sharpe > 0
    assert result.win_rate > 0.5


def test_stop_loss_exits_and_waits_for_calm() -> None:
    """The spread keeps widening after entry: stopped at |z| > stop_z, no re-entry at once."""
    rng = np.random.default_rng(18)
    n = 400
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    y = 2.0 + 1.5 * x + rng.normal(0.0, 0.05, n)
    y[200:260] += np.linspace(0.0, 3.0, 60)  # a steady divergence
    result = backtest(y, x, entry_z=2.0, exit_z=0.5, window=50, fee_bps=0.0, stop_z=3.0)
    stops = [t for t in result.trades if t.reason == "stop"]
    assert stops
    first_stop = stops[0]
    signal_bar = first_stop.exit_index - 1
    assert result.zscores[signal_bar] > 3.0
    # the next entry waits until |z| has been below entry_z
    later = [t for t in result.trades if t.entry_index > first_stop.exit_index]
    if later:
        calm = np.abs(result.zscores[first_stop.exit_index : later[0].entry_index]) < 2.0
        assert calm.any()


def test_no_trades_is_a_flat_result_not_nan() -> None:
    y, x = cointegrated_pair(seed=19, n=300)
    result = backtest(y, x, entry_z=50.0, exit_z=0.0, window=50)
    assert result.n_trades == 0
    assert (result.total_return, result.sharpe, result.sortino) == (0.0, 0.0, 0.0)
    assert (result.max_drawdown, result.win_rate, result.turnover) == (0.0, 0.0, 0.0)
    assert (result.equity == 1.0).all()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    entry=st.floats(1.0, 3.0),
    exit_gap=st.floats(0.1, 1.0),
    fee_bps=st.floats(0.0, 10.0),
    hedge=st.sampled_from(["ols", "kalman"]),
)
def test_accounting_invariants(
    seed: int, entry: float, exit_gap: float, fee_bps: float, hedge: str
) -> None:
    """For any parameters: equity = 1 + sum of trade P&L net of fees (1e-12), all finite."""
    y, x = cointegrated_pair(seed, 500, half_life=8.0)
    result = backtest(
        y,
        x,
        entry_z=entry,
        exit_z=entry - exit_gap,
        window=50,
        hedge=hedge,  # type: ignore[arg-type]
        fee_bps=fee_bps,
        delta=1e-10,  # Kalman on x ~ 98,000: see test_future_data_never_changes_the_past
        obs_var=4.0,
    )
    assert result.total_return == pytest.approx(sum(t.net_pnl for t in result.trades), abs=1e-12)
    assert all(math.isfinite(v) for v in (result.sharpe, result.max_drawdown, result.turnover))
    assert result.positions[-1] == 0
    assert set(np.unique(result.positions)) <= {-1, 0, 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entry_z": 0.0}, "entry_z: must be > 0"),
        ({"exit_z": 2.5}, "exit_z: must be below entry_z"),
        ({"stop_z": 1.0}, "stop_z: must be above entry_z"),
        ({"fee_bps": -1.0}, "fee_bps: must be >= 0"),
        ({"hedge": "ridge"}, "hedge: must be one of"),
        ({"window": 2}, "window: must be at least 3"),
        ({"window": 500}, "too few points, needs at least 502"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    y, x = cointegrated_pair(seed=20, n=300)
    with pytest.raises(AnalyticsInputError, match=message):
        backtest(y, x, **kwargs)  # type: ignore[arg-type]


def test_bad_prices() -> None:
    y, x = cointegrated_pair(seed=21, n=300)
    x[10] = -1.0
    with pytest.raises(AnalyticsInputError, match=r"x: prices must be > 0 \(position 10"):
        backtest(y, x)
    with pytest.raises(AnalyticsInputError, match="mismatched lengths"):
        backtest(y[:-1], x)
