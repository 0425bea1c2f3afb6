"""The simulated market: reproducible, cointegrated with known parameters, bursty, exact text."""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.gateway.sim import (
    PairOverride,
    SimConfig,
    SimMarket,
    run_sim,
    symbol_spec,
)

START = 1_795_300_000_000
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "BNBUSDT/BTCUSDT")


class RecordingSink:
    """A TickSink that keeps what it is given."""

    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.frames: list[tuple[bytes | str, float, str]] = []
        self.malformed: list[tuple[str, str]] = []
        self.room_waits = 0

    def on_frame(self, frame: bytes | str, recv_ts: float, source: str) -> None:
        self.frames.append((frame, recv_ts, source))

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        self.ticks.extend(ticks)

    def on_malformed(self, reason: str, detail: str) -> None:
        self.malformed.append((reason, detail))

    async def wait_for_room(self) -> None:
        self.room_waits += 1


def collect(market: SimMarket, until_ms: int) -> list[Tick]:
    out: list[Tick] = []
    for batch in market.ticks(until_ms):
        out.extend(batch)
    return out


def key(tick: Tick) -> tuple[object, ...]:
    """Everything but the receive time, which is the wall clock at push time."""
    return (
        tick.symbol,
        tick.trade_id,
        tick.price,
        tick.qty,
        tick.side,
        tick.trade_ts,
        tick.event_ts,
        tick.source,
    )


@pytest.fixture(scope="module")
def five_minutes() -> tuple[SimMarket, list[Tick]]:
    market = SimMarket(PAIRS, seed=11, start_ms=START)
    return market, collect(market, START + 300_000)


def test_same_seed_same_ticks_however_time_is_sliced() -> None:
    until = START + 40_000
    whole = SimMarket(PAIRS, seed=3, start_ms=START).advance(until, recv_ts=1.0)
    assert len(whole) > 1000

    steps = random.Random(5)
    sliced_market = SimMarket(PAIRS, seed=3, start_ms=START)
    sliced: list[Tick] = []
    now = START - 1
    while now < until:
        now = min(until, now + steps.choice((0, 1, 2, 7, 20, 333, 1000, 4321, 9999)))
        batch = sliced_market.advance(now, recv_ts=2.0)
        assert all(t.trade_ts <= now for t in batch)
        sliced.extend(batch)
    assert [key(t) for t in sliced] == [key(t) for t in whole]
    assert {t.recv_ts for t in whole} == {1.0}
    assert {t.recv_ts for t in sliced} == {2.0}

    assert [key(t) for t in SimMarket(PAIRS, seed=4, start_ms=START).advance(until)] != [
        key(t) for t in whole
    ]


def test_advance_never_returns_a_tick_twice_and_keeps_the_clock() -> None:
    market = SimMarket(PAIRS, seed=1, start_ms=START)
    first = market.advance(START + 5_000)
    assert market.now_ms == START + 5_000
    assert market.advance(START + 4_000) == []  # going back returns nothing
    second = market.advance(START + 10_000)
    assert second
    assert min(t.trade_ts for t in second) > START + 5_000
    assert not {key(t) for t in first} & {key(t) for t in second}


def test_ids_consecutive_times_ordered_sides_and_delays(
    five_minutes: tuple[SimMarket, list[Tick]],
) -> None:
    market, ticks = five_minutes
    assert (
        {t.symbol for t in ticks}
        == set(market.symbols)
        == {
            "ETHUSDT",
            "BTCUSDT",
            "SOLUSDT",
            "BNBUSDT",
        }
    )
    times = [t.trade_ts for t in ticks]
    assert times == sorted(times)  # all symbols merged in trade-time order
    for symbol in market.symbols:
        mine = [t for t in ticks if t.symbol == symbol]
        ids = [t.trade_id for t in mine]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # like Binance aggregate ids
        stream_ids = [(t.trade_ts, t.trade_id) for t in mine]
        assert stream_ids == sorted(set(stream_ids))
    delays = Counter(t.event_ts - t.trade_ts for t in ticks)
    assert min(delays) >= 1
    assert max(delays) <= 25
    sides = Counter(t.side for t in ticks)
    assert set(sides) == {"buy", "sell"}
    assert 0.4 < sides["buy"] / len(ticks) < 0.6
    assert {t.source for t in ticks} == {"sim"}


def test_prices_and_quantities_are_exact_tick_and_step_multiples(
    five_minutes: tuple[SimMarket, list[Tick]],
) -> None:
    market, ticks = five_minutes
    for symbol in market.symbols:
        spec = market.specs[symbol]
        tick_size = Decimal(spec.tick.text(1))
        step = Decimal(spec.step.text(1))
        price_re = re.compile(rf"^\d+\.\d{{{spec.tick.decimals}}}$")
        mine = [t for t in ticks if t.symbol == symbol]
        for price in {t.price for t in mine}:  # every distinct text
            assert price_re.match(price), price  # e.g. "3500.01", never "3500.0100000001"
            assert Decimal(price) % tick_size == 0
        for qty in {t.qty for t in mine}:
            assert Decimal(qty) > 0
            assert Decimal(qty) % step == 0
        prices = np.array([float(t.price) for t in mine])
        assert abs(np.median(prices) / spec.level - 1) < 0.05  # realistic level
    assert (market.specs["BTCUSDT"].tick.text(1), market.specs["ETHUSDT"].tick.text(1)) == (
        "0.1",
        "0.01",
    )
    btc_qty = [t.qty for t in ticks if t.symbol == "BTCUSDT"]
    assert all(re.match(r"^\d+\.\d{3}$", q) for q in btc_qty)  # step 0.001


def test_unknown_symbols_get_a_deterministic_market() -> None:
    spec = symbol_spec("FOOBARUSDT")
    assert spec == symbol_spec("FOOBARUSDT")
    assert spec != symbol_spec("QUXUSDT")
    assert 10**-4.6 < spec.tick.value / spec.level < 10**-3.4
    assert spec.tick.units == 1 or spec.tick.decimals == 0  # a power of ten
    market = SimMarket(["FOOBARUSDT/QUXUSDT"], seed=1, start_ms=START)
    ticks = market.advance(START + 30_000)
    assert {t.symbol for t in ticks} == {"FOOBARUSDT", "QUXUSDT"}
    for t in ticks:
        inc = market.specs[t.symbol].tick
        assert Decimal(t.price) % Decimal(inc.text(1)) == 0


def test_trades_come_in_bursts(five_minutes: tuple[SimMarket, list[Tick]]) -> None:
    _, ticks = five_minutes
    per_second = Counter(t.trade_ts // 1000 for t in ticks)
    counts = np.array([per_second.get(s, 0) for s in range(START // 1000, START // 1000 + 300)])
    median = float(np.median(counts))
    assert counts.max() >= 1000  # thousands of trades per second in a burst ...
    assert counts.max() >= 20 * median  # ... against a quiet median of a few hundred
    per_ms = Counter((t.symbol, t.trade_ts) for t in ticks)
    assert max(per_ms.values()) >= 5  # many trades of one symbol in one millisecond
    shared = sum(n for n in per_ms.values() if n > 1)
    assert shared / len(ticks) > 0.2


def resampled_last_prices(ticks: list[Tick]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in ticks],
            "time": pd.to_datetime([t.trade_ts for t in ticks], unit="ms"),
            "price": [float(t.price) for t in ticks],
        }
    )
    wide = frame.pivot_table(index="time", columns="symbol", values="price", aggfunc="last")
    return wide.resample("1s").last().ffill().dropna()


def test_known_hedge_ratio_and_half_life_are_recovered() -> None:
    """OLS on 1 s last prices recovers beta within 5 %; an AR(1) fit of the OLS spread
    recovers the OU half-life within 20 % (and the spread's sigma within 20 %). 3000 s of
    simulated time with 1 s half-lives (~3000 half-lives) and spreads wide against the noise
    of trade staleness and bid/ask bounce: over seeds 1-10 the worst errors seen were 1.6 %
    (beta) and 12.9 % (half-life)."""
    config = SimConfig(
        half_life_s=(1.0, 1.0),
        anchor_vol=3e-4,
        burst_rate_mult=1.0,  # bursts add ticks, not information: keep the test fast
        rate_scale=0.5,
        overrides={
            "ETHUSDT/BTCUSDT": PairOverride(spread_sigma=3500 * 6e-4),  # 6 bps
            "SOLUSDT/ETHUSDT": PairOverride(spread_sigma=180 * 15e-4),  # 15 bps
        },
    )
    market = SimMarket(
        ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT"), seed=2, start_ms=START, config=config
    )
    prices = resampled_last_prices(collect(market, START + 3_000_000))
    assert len(prices) > 2900
    for pair, truth in market.truth().items():
        assert truth.exact
        assert truth.half_life_s == 1.0
        y, x = pair.split("/")
        fit = sm.OLS(prices[y].to_numpy(), sm.add_constant(prices[x].to_numpy())).fit()
        alpha, beta = fit.params
        assert beta == pytest.approx(truth.beta, rel=0.05), pair
        spread = prices[y].to_numpy() - alpha - beta * prices[x].to_numpy()
        ar = sm.OLS(spread[1:], sm.add_constant(spread[:-1])).fit()
        half_life = -math.log(2) / math.log(ar.params[1])
        assert half_life == pytest.approx(truth.half_life_s, rel=0.20), pair
        assert np.std(spread) == pytest.approx(truth.spread_sigma, rel=0.20), pair


def test_shared_symbols_are_consistent_and_cycles_are_reported() -> None:
    pairs = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "SOLUSDT/BTCUSDT", "BTCUSDT/ETHUSDT")
    market = SimMarket(pairs, seed=9, start_ms=START)
    truth = market.truth()
    assert market.cycle_pairs == ("SOLUSDT/BTCUSDT", "BTCUSDT/ETHUSDT")
    eth_btc, sol_eth = truth["ETHUSDT/BTCUSDT"], truth["SOLUSDT/ETHUSDT"]
    assert eth_btc.tree
    assert eth_btc.exact
    assert sol_eth.tree
    assert sol_eth.exact
    # SOL/BTC closes a cycle: implied by the other two, a mix of two OU spreads
    sol_btc = truth["SOLUSDT/BTCUSDT"]
    assert not sol_btc.tree
    assert not sol_btc.exact
    assert sol_btc.half_life_s is None
    assert sol_btc.beta == pytest.approx(sol_eth.beta * eth_btc.beta)
    assert sol_btc.alpha == pytest.approx(sol_eth.alpha + sol_eth.beta * eth_btc.alpha)
    assert sol_btc.spread_sigma == pytest.approx(
        math.hypot(sol_eth.spread_sigma, sol_eth.beta * eth_btc.spread_sigma)
    )
    # BTC/ETH is ETH/BTC turned around: still exactly one OU spread
    btc_eth = truth["BTCUSDT/ETHUSDT"]
    assert btc_eth.exact
    assert not btc_eth.tree
    assert btc_eth.beta == pytest.approx(1 / eth_btc.beta)
    assert btc_eth.half_life_s == eth_btc.half_life_s
    # ETH is Y of one pair and X of another: one price path serves both
    prices = resampled_last_prices(collect(market, START + 120_000))
    for pair in ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "SOLUSDT/BTCUSDT"):
        y, x = pair.split("/")
        residual = prices[y] - truth[pair].alpha - truth[pair].beta * prices[x]
        assert abs(residual.mean()) < 3 * truth[pair].spread_sigma
        assert residual.std() < 2 * truth[pair].spread_sigma


def test_parameters_depend_on_seed_and_pair_only() -> None:
    a = SimMarket(PAIRS, seed=1, start_ms=START).truth()
    b = SimMarket(PAIRS[:1], seed=1, start_ms=START + 99).truth()
    c = SimMarket(PAIRS, seed=2, start_ms=START).truth()
    assert a["ETHUSDT/BTCUSDT"] == b["ETHUSDT/BTCUSDT"] != c["ETHUSDT/BTCUSDT"]
    low, high = SimConfig().half_life_s
    assert all(t.half_life_s is not None and low <= t.half_life_s <= high for t in a.values())
    with pytest.raises(ValueError, match="at least one pair"):
        SimMarket([], seed=1)
    with pytest.raises(ValueError, match="malformed pair"):
        SimMarket(["ETHUSDT"], seed=1)


async def test_run_sim_at_full_speed_feeds_the_sink() -> None:
    market = SimMarket(PAIRS, seed=5, start_ms=START)
    sink = RecordingSink()
    before = epoch_ms()
    pushed = await run_sim(market, sink, asyncio.Event(), speed=0, until_ms=START + 60_000)
    assert pushed == len(sink.ticks) > 1000
    assert sink.room_waits >= 5  # waited for room between batches
    assert market.now_ms == START + 60_000
    assert [key(t) for t in sink.ticks] == [
        key(t) for t in SimMarket(PAIRS, seed=5, start_ms=START).advance(START + 60_000)
    ]
    assert all(before <= t.recv_ts <= epoch_ms() for t in sink.ticks)


async def test_run_sim_in_real_time_follows_the_wall_clock() -> None:
    start = int(epoch_ms())
    market = SimMarket(PAIRS, seed=6, start_ms=start)
    sink = RecordingSink()
    stop = asyncio.Event()
    task = asyncio.create_task(run_sim(market, sink, stop, speed=1.0, interval_s=0.01))
    await asyncio.sleep(0.5)
    stop.set()
    pushed = await asyncio.wait_for(task, 5)
    end = epoch_ms()
    assert pushed == len(sink.ticks) > 0
    assert all(start <= t.trade_ts <= end and t.recv_ts >= t.trade_ts for t in sink.ticks)
    assert start + 300 <= market.now_ms <= end  # the sim clock kept pace with the wall clock
    with pytest.raises(ValueError, match="speed"):
        await run_sim(market, sink, stop, speed=-1)


def test_a_resumed_market_continues_ids_and_time_after_the_bus() -> None:
    first = SimMarket(PAIRS, seed=5, start_ms=START).advance(START + 20_000, recv_ts=1.0)
    last: dict[str, tuple[int, int]] = {}
    for tick in first:
        last[tick.symbol] = (tick.trade_ts, tick.trade_id)
    # restarted with the same seed and an earlier clock (a sim that ran ahead of the wall)
    resumed = SimMarket(PAIRS, seed=5, start_ms=START + 5_000, resume_after=last)
    again = resumed.advance(START + 60_000, recv_ts=2.0)
    for symbol, (last_ms, last_id) in last.items():
        ids = [t.trade_id for t in again if t.symbol == symbol]
        assert ids == list(range(last_id + 1, last_id + 1 + len(ids))), symbol
        assert min(t.trade_ts for t in again if t.symbol == symbol) > last_ms
    assert resumed.start_ms == max(ms for ms, _ in last.values()) + 1
