"""The 1-second grid against ``analytics.resample``, and the pair clock's exactly-once bars."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from spreadbus import analytics as an
from spreadbus.engine.grid import PairClock, SymbolGrid

START = 1_795_314_900_000


def random_trades(seed: int, n: int) -> list[tuple[int, float]]:
    """Trades in time order: bursts within a millisecond, pauses of many seconds."""
    rng = random.Random(seed)
    ms, out = START, []
    for _ in range(n):
        ms += rng.choice([0, 0, 1, 30, 400, 999, 1000, 2500, 7000])
        out.append((ms, round(rng.uniform(90, 110), 2)))
    return out


def resampled(trades: list[tuple[int, float]]) -> pd.Series:
    frame = pd.DataFrame(trades, columns=["ts", "price"]).assign(qty=1.0)
    bars = an.resample(frame, "1s")
    return pd.Series(bars["close"].to_numpy(), index=bars.index.as_unit("ms").asi8 // 1000)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grid_is_the_resampled_close(seed: int) -> None:
    trades = random_trades(seed, 3000)
    grid = SymbolGrid(span_s=10**6)
    for ms, price in trades:
        grid.add(ms, price)
    want = resampled(trades)
    # closed bars are the traded seconds before the open one; forward filled, every second
    assert grid.open_sec == want.index[-1]
    got = grid.prices(int(want.index[0]), grid.final_sec)
    assert got == want.iloc[:-1].tolist()
    assert grid.open_price == want.iloc[-1]


def test_applying_a_trade_twice_changes_nothing() -> None:
    trades = random_trades(4, 500)
    once, twice = SymbolGrid(10**6), SymbolGrid(10**6)
    for ms, price in trades:
        once.add(ms, price)
    for i, (ms, price) in enumerate(trades):
        twice.add(ms, price)
        if i % 7 == 0:  # a restart re-reads the trades of the cursor's millisecond
            for ms2, price2 in trades[max(0, i - 3) : i + 1]:
                if ms2 == ms:
                    twice.add(ms2, price2)
    assert once.closed_bars() == twice.closed_bars()
    assert (once.open_sec, once.open_price) == (twice.open_sec, twice.open_price)


def test_warm_load_then_live_equals_live_only() -> None:
    trades = random_trades(5, 2000)
    cut = 1200
    live = SymbolGrid(10**6)
    for ms, price in trades:
        live.add(ms, price)
    # what TS.RANGE ... AGGREGATION last 1000 returns up to the cut's millisecond
    head = resampled(trades[: cut + 1])
    head = head[~head.index.duplicated()]
    traded = {ms // 1000 for ms, _ in trades[: cut + 1]}
    warm = SymbolGrid(10**6)
    warm.load([(s, p) for s, p in head.items() if s in traded], trades[cut][0])
    for ms, price in trades[cut + 1 :]:
        warm.add(ms, price)
    assert live.closed_bars() == warm.closed_bars()
    assert live.open_price == warm.open_price


def test_history_is_trimmed_to_its_span_but_still_prices_it() -> None:
    grid = SymbolGrid(span_s=50)
    for sec in range(0, 1000, 2):  # a trade every other second
        grid.add(START + sec * 1000, float(sec))
    assert len(grid.closed_bars()) <= 2 * 50 + 64
    base = START // 1000
    start = grid.open_sec - 50  # the oldest second the span promises, at an odd offset
    want = [float((s - base) - (s - base) % 2) for s in range(start, start + 4)]
    assert grid.prices(start, start + 3) == want


def test_pair_bars_are_the_inner_join_each_once() -> None:
    a, b = random_trades(6, 1500), random_trades(7, 800)
    a_grid, b_grid = SymbolGrid(10**6), SymbolGrid(10**6)
    clock = PairClock(stale_s=10**6, max_bars=10**6)
    got: list[tuple[int, float, float]] = []
    ia = ib = 0
    rng = random.Random(8)
    while ia < len(a) or ib < len(b):  # the two legs arrive in uneven chunks
        for _ in range(rng.randint(0, 40)):
            if ia < len(a):
                a_grid.add(*a[ia])
                ia += 1
        for _ in range(rng.randint(0, 40)):
            if ib < len(b):
                b_grid.add(*b[ib])
                ib += 1
        got += clock.due(a_grid, b_grid)
    joined = pd.concat({"a": resampled(a), "b": resampled(b)}, axis=1, join="inner")
    joined = joined.loc[: min(a_grid.open_sec, b_grid.open_sec) - 1]  # open seconds wait
    want = list(zip(joined.index.tolist(), joined["a"].tolist(), joined["b"].tolist(), strict=True))
    assert got == want
    assert len({sec for sec, _, _ in got}) == len(got)
