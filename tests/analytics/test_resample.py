"""Bars from ticks: exact OHLCV against pandas, the empty-bar policy, and tie ordering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.analytics import AnalyticsInputError, resample

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch ms
PANDAS_RULE = {"1s": "1s", "1m": "1min", "5m": "5min"}


def _ticks(ts: list[int], prices: list[float], qty: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts, "price": prices, "qty": qty or [1.0] * len(ts)})


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 900_000),  # ms offsets over 15 minutes
            st.floats(1.0, 1e5),
            st.floats(0.0, 50.0),
        ),
        min_size=1,
        max_size=200,
    ),
    rule=st.sampled_from(["1s", "1m", "5m"]),
)
def test_bars_equal_pandas_resample(data: list[tuple[int, float, float]], rule: str) -> None:
    """OHLC exactly equal to pandas' ``resample().ohlc()`` on a stably time-sorted frame,
    volume relative 1e-12 (summation order), empty bars per the documented policy."""
    ticks = _ticks([T0 + d[0] for d in data], [d[1] for d in data], [d[2] for d in data])
    bars = resample(ticks, rule)  # type: ignore[arg-type]

    ordered = ticks.sort_values("ts", kind="stable")
    frame = ordered.set_index(pd.to_datetime(ordered["ts"], unit="ms", utc=True))
    sampler = frame.resample(PANDAS_RULE[rule], label="left", closed="left")
    expected = sampler["price"].ohlc()
    expected_volume = sampler["qty"].sum()
    expected_count = sampler["price"].count()

    assert bars.index.equals(expected.index.rename("ts"))
    traded = expected_count.to_numpy() > 0
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[column].to_numpy()[traded], expected[column][traded])
    np.testing.assert_allclose(bars["volume"], expected_volume, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(bars["trades"], expected_count)
    np.testing.assert_array_equal(bars["last"], bars["close"])
    # empty bars: every price field is the previous close, volume 0
    previous_close = expected["close"].ffill().shift(1).to_numpy()
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[column].to_numpy()[~traded], previous_close[~traded])
    assert (bars["volume"].to_numpy()[~traded] == 0).all()


def test_trades_in_one_millisecond_keep_their_order() -> None:
    """Open is the first trade of the bar and close the last, as given, even on equal ms."""
    ticks = _ticks([T0 + 5, T0 + 5, T0 + 5, T0 + 5], [101.0, 99.0, 103.0, 100.0], [1, 2, 3, 4])
    bar = resample(ticks, "1m").iloc[0]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (101.0, 103.0, 99.0, 100.0, 10.0)
    # out-of-order input is sorted by time, ties keeping input order
    shuffled = _ticks([T0 + 9, T0 + 5, T0 + 5], [1.0, 2.0, 3.0])
    bar = resample(shuffled, "1m").iloc[0]
    assert (bar.open, bar.close) == (2.0, 1.0)


def test_empty_bar_policy() -> None:
    ticks = _ticks([T0 + 500, T0 + 3_200, T0 + 3_900], [10.0, 12.0, 11.0], [1.0, 2.0, 3.0])
    bars = resample(ticks, "1s")
    assert list(bars.index) == list(pd.date_range("2026-01-01", periods=4, freq="1s", tz="UTC"))
    assert bars.index.name == "ts"
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert str(bars.index.tz) == "UTC"
    gap = bars.iloc[1]  # no trade in [1 s, 2 s): the previous close carried, nothing traded
    assert (gap.open, gap.high, gap.low, gap.close, gap.last) == (10.0,) * 5
    assert (gap.volume, gap.trades) == (0.0, 0)
    last = bars.iloc[3]
    assert (last.open, last.high, last.low, last.close, last.volume) == (
        12.0,
        12.0,
        11.0,
        11.0,
        5.0,
    )


def test_datetime_timestamps_equal_epoch_ms() -> None:
    ms = [T0 + 100, T0 + 61_000, T0 + 61_500]
    prices = [1.0, 2.0, 3.0]
    expected = resample(_ticks(ms, prices), "1m")
    aware = pd.to_datetime(pd.Series(ms), unit="ms", utc=True)
    naive = aware.dt.tz_localize(None)
    for stamps in (aware, naive, aware.dt.tz_convert("Asia/Tokyo")):
        frame = pd.DataFrame({"ts": stamps, "price": prices, "qty": [1.0] * 3})
        pd.testing.assert_frame_equal(resample(frame, "1m"), expected)


@pytest.mark.parametrize(
    ("ticks", "rule", "message"),
    [
        (_ticks([], []), "1m", "needs at least 1 tick, got 0"),
        (pd.DataFrame({"ts": [T0], "price": [1.0]}), "1m", r"missing column\(s\) \['qty'\]"),
        (_ticks([T0, T0 + 1], [1.0, float("nan")]), "1m", "price: contains NaN"),
        (_ticks([T0], [0.0]), "1m", "price: trade prices must be > 0"),
        (_ticks([T0], [1.0], [-1.0]), "1m", "qty: trade quantities must be >= 0"),
        (_ticks([T0], [1.0]), "2h", "rule: must be one of"),
        (pd.DataFrame({"ts": ["x"], "price": [1.0], "qty": [1.0]}), "1m", "ts: expected epoch"),
    ],
)
def test_bad_ticks(ticks: pd.DataFrame, rule: str, message: str) -> None:
    with pytest.raises(AnalyticsInputError, match=message):
        resample(ticks, rule)  # type: ignore[arg-type]
