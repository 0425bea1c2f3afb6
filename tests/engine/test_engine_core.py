"""The engine core on simulated streams, read in micro-batches, against the library offline.

Tolerances: hedge (beta, alpha), bar spread, z-score and correlation 1e-9 relative (the
engine's windows hold exact sums; the reference is two-pass numpy); statistics computed by
the same library function on the same window (ADF, Hurst, half-life, risk, Engle-Granger,
Kalman, basis) must be equal to 1e-12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pytest

from spreadbus import analytics as an
from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.engine.core import EngineCore
from spreadbus.engine.pairstate import (
    BAR_FIELDS,
    EG_FIELDS,
    MIN_BARS,
    OU_FIELDS,
    STATS_FIELDS,
    PairState,
)

from .helpers import (
    START_MS,
    Entry,
    ghost_ticks,
    kalman_reference,
    last_price,
    pair_bars,
    read_in_rounds,
    reference_at,
    sim_ticks,
    stream_entries,
    window_arrays,
)

PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT")
WINDOW = 60
SECONDS = 150


@dataclass
class Run:
    ticks: list[Tick]
    ghosts: list[Tick]
    core: EngineCore
    snapshot: dict[str, dict[str, float]]


@pytest.fixture(scope="module")
def market() -> tuple[list[Tick], list[Tick], dict[str, list[Entry]]]:
    ticks = sim_ticks(PAIRS, SECONDS, seed=11)
    ghosts = ghost_ticks(ticks)
    return ticks, ghosts, stream_entries(ticks) | stream_entries(ghosts, ghost=True)


@pytest.fixture(scope="module", params=[7, 500], ids=["count7", "count500"])
def run(
    request: pytest.FixtureRequest, market: tuple[list[Tick], list[Tick], dict[str, list[Entry]]]
) -> Run:
    """The core fed the market as XREAD COUNT n would hand it over."""
    ticks, ghosts, streams = market
    core, snapshot = run_core(streams, request.param)
    return Run(ticks, ghosts, core, snapshot)


def run_core(
    streams: dict[str, list[Entry]], count: int
) -> tuple[EngineCore, dict[str, dict[str, float]]]:
    core = EngineCore(WINDOW)
    for symbol in ("ETHUSDT", "BTCUSDT", "SOLUSDT"):
        core.add_symbol(symbol)
    for pair in PAIRS:
        core.add_pair(pair)
    snapshot: dict[str, dict[str, float]] = {}
    now = 0.0
    for batch in read_in_rounds(streams, count):
        core.begin_batch()
        for stream, entries, idle in batch:
            core.ingest(stream, entries, idle)
        now += 10_000.0  # wall clock far enough apart that every basis figure is computed
        out = core.step(now)
        for pair, fields in out.pair_fields.items():
            snapshot.setdefault(pair, {}).update(fields)
        while len(core.jobs):
            core.run_jobs(1.0)
            for pair, fields in core.step(now).pair_fields.items():
                snapshot.setdefault(pair, {}).update(fields)
    return core, snapshot


def test_snapshot_equals_offline_analytics(run: Run) -> None:
    ticks, ghosts, core, snapshot = run.ticks, run.ghosts, run.core, run.snapshot
    for pair in PAIRS:
        snap = snapshot[pair]
        bars = pair_bars(ticks, pair)
        bar_ms = int(snap["bar_ms"])
        # every bar that is final for both legs, and no more: the last second is still open
        assert bar_ms == bars.index[-2]
        ref = reference_at(bars, bar_ms, WINDOW)
        assert snap["bars"] == ref.n == snap["window_bars"] == WINDOW
        for name in ("beta", "alpha", "spread_bar", "zscore_bar", "spread_std", "corr"):
            assert snap[name] == pytest.approx(getattr(ref, name), rel=1e-9, abs=1e-12), name
        assert snap["kalman_beta"] == pytest.approx(kalman_reference(bars, bar_ms), rel=1e-12)
        # live: the last trade of each leg with the last bar's hedge
        y, x = pair.split("/")
        live = last_price(ticks, y) - ref.alpha - ref.beta * last_price(ticks, x)
        assert snap["last_price_y"] == last_price(ticks, y)
        assert snap["spread"] == pytest.approx(live, rel=1e-9, abs=1e-9)
        assert snap["zscore"] == pytest.approx(live / ref.spread_std, rel=1e-9, abs=1e-9)
        # scheduled statistics: the window of the bar they name
        ys, xs = window_arrays(bars, int(snap["stats_ms"]), WINDOW)
        fit = an.ols_hedge(ys, xs)
        sp = an.spread(ys, xs, fit.beta, fit.alpha)
        assert bar_ms - snap["stats_ms"] < 5000
        test = an.adf(sp, maxlag=1, autolag=None)
        assert snap["adf_stat"] == pytest.approx(test.stat, rel=1e-9)
        assert snap["adf_pvalue"] == pytest.approx(test.pvalue, rel=1e-9)
        assert snap["half_life_ar1"] == pytest.approx(an.half_life_ar1(sp), rel=1e-9)
        assert snap["hurst"] == pytest.approx(an.hurst(sp), rel=1e-9)
        report = an.risk(pd.Series(sp).diff().to_numpy()[1:] / (ys + abs(fit.beta) * xs)[:-1],
                         365 * 86400)  # fmt: skip
        assert snap["spread_vol"] == pytest.approx(report.vol_ann, rel=1e-9)
        assert snap["var_95"] == pytest.approx(report.var_95, rel=1e-9)
        assert snap["max_drawdown"] == pytest.approx(report.max_drawdown, rel=1e-9, abs=1e-15)
        assert snap["sharpe_ann"] == pytest.approx(report.sharpe, rel=1e-9)
        assert snap["sortino_ann"] == pytest.approx(report.sortino, rel=1e-9)
        # the OU half-life and its interval: the window of the bar they name
        ys, xs = window_arrays(bars, int(snap["ou_ms"]), WINDOW)
        fit = an.ols_hedge(ys, xs)
        ou = an.ou_fit(an.spread(ys, xs, fit.beta, fit.alpha), level=0.90)
        assert bar_ms - snap["ou_ms"] < 15_000
        assert (snap["half_life"], snap["half_life_lo"], snap["half_life_hi"]) == pytest.approx(
            (ou.half_life, ou.half_life_lo, ou.half_life_hi), rel=1e-6
        )
        assert snap["half_life_lo"] <= snap["half_life"] <= snap["half_life_hi"]
        ys, xs = window_arrays(bars, int(snap["eg_ms"]), WINDOW)
        eg = an.engle_granger(ys, xs, maxlag=1, autolag=None)
        assert snap["eg_pvalue"] == pytest.approx(eg.pvalue, rel=1e-9)
        assert bar_ms - snap["eg_ms"] < 30_000
    # every entry counted once, per stream
    for symbol in ("ETHUSDT", "BTCUSDT", "SOLUSDT"):
        real = sum(t.symbol == symbol for t in ticks)
        ghost = sum(t.symbol == symbol for t in ghosts)
        assert core.positions[keys.tick_stream(symbol)].processed == real
        assert core.positions[keys.ghost_stream(symbol)].processed == ghost
    assert core.ticks == len(ticks) + len(ghosts)


def test_basis_equals_library_as_of_match(run: Run) -> None:
    ticks, ghosts, core = run.ticks, run.ghosts, run.core
    for symbol in ("ETHUSDT", "BTCUSDT"):
        real = pd.Series([float(t.price) for t in ticks if t.symbol == symbol],
                         index=[t.trade_ts for t in ticks if t.symbol == symbol])  # fmt: skip
        mine = [t for t in ghosts if t.symbol == symbol]
        ghost = pd.Series([float(t.price) for t in mine], index=[t.trade_ts for t in mine])
        basis = an.arbitrage_basis(real, ghost)
        values = core.symbols[symbol].values
        # the engine matches ghosts in arrival order; the last one to arrive is the last match
        assert values["basis_bps"] == pytest.approx(
            float(basis[basis.index == mine[-1].trade_ts].iloc[-1]), rel=1e-12
        )
        assert values["basis_ms"] == max(t.trade_ts for t in mine)


def test_bad_entries_are_counted_and_skipped() -> None:
    ticks = sim_ticks(["ETHUSDT/BTCUSDT"], 30, seed=2)
    streams = stream_entries(ticks)
    key = keys.tick_stream("ETHUSDT")
    good = streams[key]
    parts = good[0][1][b"t"].split(b" ")

    def changed(index: int, value: bytes) -> dict[bytes, bytes]:
        return {b"t": b" ".join([*parts[:index], value, *parts[index + 1 :]])}

    bad = [
        (b"1-1", {b"symbol": b"ETHUSDT", b"price": b"1"}),  # fields missing
        (b"1-2", changed(tickschema.PRICE, b"abc")),  # not a number
        (b"1-3", changed(tickschema.PRICE, b"-5")),  # out of range
        (b"1-4", changed(tickschema.SIDE, b"up")),
        (b"1-5", changed(tickschema.SOURCE, b"\xff")),  # not even text
    ]
    core = EngineCore(20)
    core.add_symbol("ETHUSDT")
    core.add_symbol("BTCUSDT")
    core.add_pair("ETHUSDT/BTCUSDT")
    core.begin_batch()
    core.ingest(key, good[:10] + bad + good[10:])
    core.ingest(keys.tick_stream("BTCUSDT"), streams[keys.tick_stream("BTCUSDT")])
    out = core.step(0.0)
    position = out.positions[key]
    assert (position.processed, position.bad) == (len(good), len(bad))
    assert position.last_id == good[-1][0].decode()
    reasons = [b.reason for b in core.take_bad_entries()]
    assert len(reasons) == 5 and "misses field" in reasons[0] and "non-numeric" in reasons[1]
    assert out.pair_fields["ETHUSDT/BTCUSDT"]["bars"] == 20


def test_a_quiet_leg_holds_the_pair_only_while_its_stream_is_busy() -> None:
    core = EngineCore(20)
    for symbol in ("AAAUSDT", "BBBUSDT"):
        core.add_symbol(symbol)
    core.add_pair("AAAUSDT/BBBUSDT")
    pair = core.pairs["AAAUSDT/BBBUSDT"]

    def feed(symbol: str, seconds: range, idle: bool) -> None:
        entries = [
            (f"{START_MS + s * 1000}-{s}".encode(),
             {b"symbol": symbol.encode(), b"id": str(s).encode(), b"price": f"{100 + s}".encode(),
              b"qty": b"1", b"side": b"buy", b"T": str(START_MS + s * 1000).encode(),
              b"E": str(START_MS + s * 1000).encode(), b"recv": b"0", b"src": b"sim"})
            for s in seconds
        ]  # fmt: skip
        core.ingest(keys.tick_stream(symbol), entries, idle)

    core.begin_batch()
    feed("AAAUSDT", range(10), idle=True)
    feed("BBBUSDT", range(2), idle=False)  # B has more waiting: its silence is not known
    core.step(0.0)
    assert pair.clock.next_sec == START_MS // 1000 + 1  # only bar 0 is final for both
    core.begin_batch()
    feed("AAAUSDT", range(10, 12), idle=True)  # B idle now (nothing returned for it)
    core.step(0.0)
    # B silent for more than STALE_S while A traded: the pair moves on, B carried forward
    assert pair.clock.next_sec == START_MS // 1000 + 11 - 3
    assert not math.isnan(float(pair.values["bar_ms"]))


def test_every_statistic_warms_up_by_the_same_rule() -> None:
    """NaN until MIN_BARS bars, then all at once, each over the bars there are (issue 13)."""
    ticks = sim_ticks(["ETHUSDT/BTCUSDT"], 40, seed=5)
    bars = pair_bars(ticks, "ETHUSDT/BTCUSDT")
    state = PairState("ETHUSDT/BTCUSDT", window=WINDOW, stale_s=60, history_s=WINDOW)
    statistics = (*BAR_FIELDS, *STATS_FIELDS, *OU_FIELDS, *EG_FIELDS)
    for count, (ms, row) in enumerate(bars.iterrows(), start=1):
        for job in state.on_bars([(ms // 1000, float(row["y"]), float(row["x"]))], live=False):
            job.run()
        values = state.values
        assert values["bars"] == count and values["window_bars"] == WINDOW
        if count < MIN_BARS:
            assert all(math.isnan(values[f]) for f in statistics), count
            continue
        # inf is an answer (a half-life interval that reaches "no reversion"), NaN is not
        missing = [f for f in statistics if math.isnan(values[f])]
        assert missing == [], (count, missing)
        ref = reference_at(bars, ms, WINDOW)  # pandas over the bars so far
        assert values["corr"] == pytest.approx(ref.corr, rel=1e-9)
        assert values["beta"] == pytest.approx(ref.beta, rel=1e-9)
        if count == MIN_BARS + 5:
            break
    else:
        pytest.fail("the sim gave too few bars")
