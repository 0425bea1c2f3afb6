"""The QuantEngine on real Redis, fed by the gateway's TickWriter with the simulated market.

Tolerances of the offline comparison: hedge, spread, z-score and correlation 1e-9 relative
(exact window sums in the engine against two-pass numpy offline, both written to Redis with
full float precision); statistics the library computes on the same window (ADF, Kalman) 1e-9.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence

import orjson
import pytest
import redis.asyncio as aioredis

from spreadbus import analytics as an
from spreadbus.bus import keys, streamid
from spreadbus.bus.codec import Tick
from spreadbus.bus.configstore import set_pairs
from spreadbus.config import Settings
from spreadbus.engine.alerts import rule_to_json, validate_rule
from spreadbus.engine.consumer import COUNTS_FIELD, load_cursor
from spreadbus.engine.core import history_span
from spreadbus.engine.rulestore import put_rule

from .helpers import (
    START_MS,
    decoded,
    engine_settings,
    eventually,
    ghost_ticks,
    kalman_reference,
    last_price,
    pair_bars,
    publish,
    reference_at,
    running_engine,
    sim_ticks,
    window_arrays,
)

PAIR = "ETHUSDT/BTCUSDT"
WINDOW = 40


async def snapshot(client: aioredis.Redis, pair: str) -> dict[str, float]:
    return decoded(await client.hgetall(keys.analytics_state(pair)))


def warm_start_ms(ticks: Sequence[Tick], pair: str, until: dict[str, int] | None = None) -> int:
    """The first bar of a pair warmed from the price series: each leg's history reaches
    ``history_span`` seconds back from where its stream is resumed (``until``: trade ms per
    symbol, default its newest trade); the pair starts where both legs have a bar."""
    span = history_span(WINDOW)
    firsts = []
    for symbol in pair.split("/"):
        times = [t.trade_ts for t in ticks if t.symbol == symbol]
        end = (until or {}).get(symbol, times[-1])
        oldest = end // 1000 - span + 1
        firsts.append(min(ms // 1000 for ms in times if ms // 1000 >= oldest) * 1000)
    return max(firsts)


def assert_matches_offline(
    snap: dict[str, float], ticks: Sequence[Tick], pair: str, *, kalman_from: int = 0
) -> None:
    """``kalman_from``: the bar the engine's Kalman filter started at (0: the first), or -1
    not to compare it."""
    bars = pair_bars(ticks, pair)
    bar_ms = int(snap["bar_ms"])
    ref = reference_at(bars, bar_ms, WINDOW)
    assert snap["bars"] == ref.n == snap["window_bars"] == WINDOW
    for name in ("beta", "alpha", "spread_bar", "zscore_bar", "spread_std", "corr"):
        assert snap[name] == pytest.approx(getattr(ref, name), rel=1e-9, abs=1e-12), name
    if kalman_from >= 0:
        kalman = kalman_reference(bars.loc[kalman_from:], bar_ms)
        assert snap["kalman_beta"] == pytest.approx(kalman, rel=1e-9)
    y, x = pair.split("/")
    live = last_price(ticks, y) - ref.alpha - ref.beta * last_price(ticks, x)
    assert snap["zscore"] == pytest.approx(live / ref.spread_std, rel=1e-9, abs=1e-9)
    ys, xs = window_arrays(bars, int(snap["stats_ms"]), WINDOW)
    fit = an.ols_hedge(ys, xs)
    test = an.adf(an.spread(ys, xs, fit.beta, fit.alpha), maxlag=1, autolag=None)
    assert snap["adf_pvalue"] == pytest.approx(test.pvalue, rel=1e-9)
    ys, xs = window_arrays(bars, int(snap["eg_ms"]), WINDOW)
    eg = an.engle_granger(ys, xs, maxlag=1, autolag=None)
    assert snap["eg_pvalue"] == pytest.approx(eg.pvalue, rel=1e-9)
    # the OU fit ran in the engine's worker process; the optimizer's path may differ in the
    # last bits between two BLAS set-ups, so 1e-6 rather than 1e-9
    ys, xs = window_arrays(bars, int(snap["ou_ms"]), WINDOW)
    fit = an.ols_hedge(ys, xs)
    ou = an.ou_fit(an.spread(ys, xs, fit.beta, fit.alpha), level=0.90)
    for name in ("half_life", "half_life_lo", "half_life_hi"):
        assert snap[name] == pytest.approx(getattr(ou, name), rel=1e-6), name


async def final_snapshot(
    client: aioredis.Redis, ticks: Sequence[Tick], pair: str
) -> dict[str, float]:
    """The pair's snapshot once both legs' last ticks are processed (the cursor is stored
    with the snapshot it produced, in one transaction) and the slow statistics have run."""
    last_ids = {
        keys.tick_stream(s): next(t.stream_id for t in reversed(ticks) if t.symbol == s)
        for s in pair.split("/")
    }

    async def done() -> dict[str, float] | None:
        cursor = await load_cursor(client)
        if any(s not in cursor or cursor[s].last_id != i for s, i in last_ids.items()):
            return None
        snap = await snapshot(client, pair)
        stamps = ("eg_ms", "stats_ms", "ou_ms")
        return snap if all(snap.get(stamp, 0) > 0 for stamp in stamps) else None

    result = await eventually(done, 40, f"{pair} to reach its last ticks")
    assert isinstance(result, dict)
    assert result["bar_ms"] == pair_bars(ticks, pair).index[-2]  # every final bar, no more
    return result


@pytest.mark.parametrize("mode", ["stream", "warm"])
async def test_snapshot_equals_offline_analytics(
    settings: Settings, aredis: aioredis.Redis, mode: str
) -> None:
    """``stream``: the engine runs first and reads every tick from the streams; ``warm``: the
    ticks are there before it starts, and its windows come from the price series."""
    ticks = sim_ticks([PAIR], 100, seed=21)
    ghosts = ghost_ticks(ticks)
    if mode == "warm":
        await publish(aredis, ticks, ghosts)
    async with running_engine(engine_settings(settings, [PAIR], WINDOW)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        if mode == "stream":
            await publish(aredis, ticks, ghosts, pause_s=0.002)
        snap = await final_snapshot(aredis, ticks, PAIR)
        health = engine.health()
    kalman_from = warm_start_ms(ticks, PAIR) if mode == "warm" else 0
    assert_matches_offline(snap, ticks, PAIR, kalman_from=kalman_from)
    assert snap["updated_ms"] > 0 and snap["window_bars"] == WINDOW
    cursor = await load_cursor(aredis)
    for symbol in PAIR.split("/"):
        assert (await aredis.hget(keys.analytics_state(symbol), "price")) is not None
        real = cursor[keys.tick_stream(symbol)]
        if mode == "stream":  # every entry read once; warm started at the stream's head
            assert real.processed == sum(t.symbol == symbol for t in ticks)
            assert cursor[keys.ghost_stream(symbol)].processed == sum(
                t.symbol == symbol for t in ghosts
            )
        assert real.last_id == next(t.stream_id for t in reversed(ticks) if t.symbol == symbol)
    assert health["bad_entries"] == 0 and health["job_failures"] == 0
    if mode == "stream":
        # the chart series: one sample per bar on the 1 s grid, the bar's own hedge
        rows = await aredis.execute_command(
            "TS.RANGE", keys.analytics_series(PAIR, "beta"), "-", "+"
        )
        bars = pair_bars(ticks, PAIR)
        for ts, value in rows[-5:]:
            ys, xs = window_arrays(bars, int(ts), WINDOW)
            assert float(value) == pytest.approx(an.ols_hedge(ys, xs).beta, rel=1e-9)
        info = await aredis.execute_command("TS.INFO", keys.analytics_series(PAIR, "zscore"))
        assert keys.analytics_series_1m(PAIR, "zscore").encode() in info[b"rules"]


@pytest.mark.slow
async def test_kill_and_restart_mid_stream_processes_every_tick_once(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    ticks = sim_ticks([PAIR], 110, seed=31)
    ghosts = ghost_ticks(ticks)
    cut = START_MS + 50_000
    await publish(
        aredis, [t for t in ticks if t.trade_ts < cut], [g for g in ghosts if g.trade_ts < cut]
    )
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": str(settings.redis_url),
        "SPREADBUS_DATA_DIR": str(settings.data_dir),
        "SPREADBUS_PAIRS": PAIR,
        "SPREADBUS_WINDOW": str(WINDOW),
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        "SPREADBUS_LOG_LEVEL": "INFO",
    }
    log_path = settings.data_dir / "engine.log"

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:  # kept for a failing run's report
            return subprocess.Popen(
                [sys.executable, "-m", "spreadbus", "engine"], env=env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    try:
        at_kill, resumed, snap = await _kill_and_restart(aredis, ticks, ghosts, cut, start)
    except BaseException:
        print(log_path.read_text())  # shown by pytest for the failing test
        raise
    assert at_kill > 0
    cursor = await load_cursor(aredis)
    for symbol in PAIR.split("/"):
        for stream, sent in (
            (keys.tick_stream(symbol), [t for t in ticks if t.symbol == symbol]),
            (keys.ghost_stream(symbol), [g for g in ghosts if g.symbol == symbol]),
        ):
            after_cut = [t for t in sent if t.trade_ts >= cut]
            # exactly the entries written after the first engine took its start at the head
            assert cursor[stream].processed == len(after_cut), stream
            assert cursor[stream].bad == 0
    # the restarted engine's windows (warm start up to the cursor + the stream after it) are
    # the offline ones; its Kalman filter restarted from that warm history
    until = {symbol: resumed[keys.tick_stream(symbol)] for symbol in PAIR.split("/")}
    assert_matches_offline(snap, ticks, PAIR, kalman_from=warm_start_ms(ticks, PAIR, until))


async def test_pairs_added_and_removed_at_run_time(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    pairs = ["ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT"]
    ticks = sim_ticks(pairs, 130, seed=41)
    cut = START_MS + 90_000
    before = [t for t in ticks if t.trade_ts < cut]
    await publish(aredis, before)
    async with running_engine(engine_settings(settings, ["ETHUSDT/BTCUSDT"], WINDOW)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        assert set(engine.core.symbols) == {"ETHUSDT", "BTCUSDT"}
        assert keys.tick_stream("SOLUSDT") not in await load_cursor(aredis)

        await set_pairs(aredis, pairs)  # add SOL/ETH: warmed from the series at once

        async def sol_ready() -> dict[str, float] | None:
            snap = await snapshot(aredis, "SOLUSDT/ETHUSDT")
            return snap if snap.get("bars") == WINDOW else None

        snap = await eventually(sol_ready, what="the new pair's full window")
        assert isinstance(snap, dict)
        ref = reference_at(pair_bars(before, "SOLUSDT/ETHUSDT"), int(snap["bar_ms"]), WINDOW)
        assert snap["beta"] == pytest.approx(ref.beta, rel=1e-9)
        assert keys.tick_stream("SOLUSDT") in await load_cursor(aredis)

        await publish(aredis, [t for t in ticks if t.trade_ts >= cut])  # the new leg is read
        final = await final_snapshot(aredis, ticks, "SOLUSDT/ETHUSDT")
        kalman_from = warm_start_ms(before, "SOLUSDT/ETHUSDT")  # built from the legs' history
        assert_matches_offline(final, ticks, "SOLUSDT/ETHUSDT", kalman_from=kalman_from)

        await set_pairs(aredis, ["SOLUSDT/ETHUSDT"])  # remove ETH/BTC: BTC is no longer read

        async def cleaned() -> bool:
            cursor = await load_cursor(aredis)
            gone = not {keys.tick_stream("BTCUSDT"), keys.ghost_stream("BTCUSDT")} & set(cursor)
            counts = orjson.loads(await aredis.hget(keys.engine_cursor(), COUNTS_FIELD))
            gone = gone and keys.tick_stream("BTCUSDT") not in counts
            state = await aredis.exists(keys.analytics_state("ETHUSDT/BTCUSDT"))
            btc_price = await aredis.hget(keys.analytics_state("BTCUSDT"), "price")
            return gone and not state and btc_price is None

        await eventually(cleaned, what="the removed pair's state to be cleaned")
        assert set(engine.core.symbols) == {"SOLUSDT", "ETHUSDT"}
        assert list(engine.core.pairs) == ["SOLUSDT/ETHUSDT"]
        assert engine.health()["pairs"] == 1


def _tick(symbol: str, sec: int, price: float, trade_id: int) -> Tick:
    ms = START_MS + sec * 1000
    return Tick(symbol, trade_id, f"{price:.2f}", "1.000", "buy", ms, ms, ms + 1.0, "sim")


async def test_alerts_fire_once_per_crossing_and_respect_cooldown(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    rule = validate_rule(
        {"metric": "last_price_y", "op": ">", "threshold": 105, "hysteresis": 1, "cooldown_s": 10},
        "y-high",
    )
    await aredis.hset(keys.CONFIG_ALERTS, rule.id, rule_to_json(rule))  # no defaults seeded
    pair = "AAAUSDT/BBBUSDT"
    pubsub = aredis.pubsub()
    await pubsub.subscribe(keys.CHANNEL_ALERTS)
    # (second, price of y): fire at 1; quiet at 2; re-arm at 3 (103 < 105 - 1); the crossing at
    # 5 is within 10 s of the alert: suppressed; re-arm at 6; fire again at 20
    path = [(0, 100.0), (1, 106.0), (2, 107.0), (3, 103.0), (5, 106.0), (6, 103.0), (20, 106.0)]
    stream = keys.tick_stream("AAAUSDT")

    def processed(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            cursor = await load_cursor(aredis)
            return stream in cursor and cursor[stream].processed >= n

        return check

    async with running_engine(engine_settings(settings, [pair], 20)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        await publish(aredis, [_tick("BBBUSDT", 0, 50.0, 1)])
        for n, (sec, price) in enumerate(path, start=1):
            await publish(aredis, [_tick("AAAUSDT", sec, price, n)])
            await eventually(processed(n), what=f"tick {n}")
        health = engine.health()
    alerts = []
    deadline = asyncio.get_running_loop().time() + 5
    while len(alerts) < 3 and asyncio.get_running_loop().time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            alerts.append(orjson.loads(message["data"]))
        elif len(alerts) == 2:
            break  # both expected alerts are in and nothing more is coming
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert [(a["rule_id"], a["pair"], a["value"], a["threshold"]) for a in alerts] == [
        ("y-high", pair, 106.0, 105.0)
    ] * 2
    assert [a["time_ms"] for a in alerts] == [START_MS + 1000, START_MS + 20_000]
    assert health["alerts_fired"] == 2 and health["alerts_suppressed"] == 1
    recent = [orjson.loads(r) for r in await aredis.lrange(keys.recent_alerts(), 0, -1)]
    assert [r["time_ms"] for r in recent] == [START_MS + 20_000, START_MS + 1000]  # newest first
    state = orjson.loads(await aredis.hget(keys.alert_state(), f"y-high|{pair}"))
    assert state == {"active": True, "last": START_MS + 20_000, "suppressed": 1}
    # a restarted engine knows the crossing is already announced
    async with running_engine(engine_settings(settings, [pair], 20)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        await asyncio.sleep(0.3)
        assert engine.health()["alerts_fired"] == 0


async def test_bad_entries_are_counted_and_skipped(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    ticks = sim_ticks([PAIR], 70, seed=51)
    cut = START_MS + 30_000
    await publish(aredis, [t for t in ticks if t.trade_ts < cut])
    stream = keys.tick_stream("ETHUSDT")
    last = next(t for t in reversed(ticks) if t.symbol == "ETHUSDT" and t.trade_ts < cut)
    stamp = str(last.trade_ts)
    good = {"symbol": "ETHUSDT", "id": "1", "price": "3500.00", "qty": "1", "side": "buy",
            "T": stamp, "E": stamp, "recv": "0", "src": "sim"}  # fmt: skip
    junk = [{"symbol": "ETHUSDT", "price": "1"}, good | {"price": "abc"}, good | {"side": "up"}]
    async with running_engine(engine_settings(settings, [PAIR], WINDOW)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        for n, fields in enumerate(junk, start=1):  # between two real entries, by id
            await aredis.xadd(stream, fields, id=f"{last.trade_ts}-{last.trade_id + 10**6 + n}")
        await publish(aredis, [t for t in ticks if t.trade_ts >= cut])
        snap = await final_snapshot(aredis, ticks, PAIR)
        health = engine.health()
    assert health["bad_entries"] == 3
    cursor = await load_cursor(aredis)
    assert cursor[stream].bad == 3
    assert cursor[stream].processed == sum(
        t.symbol == "ETHUSDT" and t.trade_ts >= cut for t in ticks
    )
    assert_matches_offline(snap, ticks, PAIR)


async def test_default_rules_are_seeded_and_invalid_rules_skipped(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with running_engine(engine_settings(settings, [PAIR], WINDOW)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        stored = await aredis.hgetall(keys.CONFIG_ALERTS)
        assert sorted(stored) == [b"adf-lost", b"basis-10bps", b"zscore-2"]
        await aredis.hset(keys.CONFIG_ALERTS, "broken", '{"metric": "nope", "op": ">"}')
        await put_rule(aredis, {"metric": "corr", "op": "<", "threshold": 0.2}, "corr-low")

        async def reloaded() -> bool:
            return len(engine.core.alerts.rules) == 4

        await eventually(reloaded, what="the rules to be re-read")
        health = engine.health()
    assert health["rules"] == 4 and health["rules_invalid"] == 1
    assert "broken" in engine.invalid_rules and "unknown metric" in engine.invalid_rules["broken"]


async def _kill_and_restart(
    aredis: aioredis.Redis,
    ticks: Sequence[Tick],
    ghosts: Sequence[Tick],
    cut: int,
    start: Callable[[], subprocess.Popen[bytes]],
) -> tuple[int, dict[str, int], dict[str, float]]:
    """Run an engine, SIGKILL it while ticks are still being written, run a second one to
    the end; returns the processed count at the kill, the stored resume points (trade ms per
    stream) and the final snapshot."""
    real = keys.tick_stream("ETHUSDT")

    async def processed() -> int:
        cursor = await load_cursor(aredis)
        return cursor[real].processed if real in cursor else 0

    def reached(target: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await processed() >= target

        return check

    async def has_cursor() -> bool:
        return bool(await aredis.hexists(keys.engine_cursor(), real))

    first = start()
    try:
        # the engine starts at the stream head (history from the series), then follows it
        await eventually(has_cursor, 30, "the first engine's cursor")
        writer = asyncio.create_task(
            publish(aredis, [t for t in ticks if t.trade_ts >= cut],
                    [g for g in ghosts if g.trade_ts >= cut], flush_ms=250, pause_s=0.02)
        )  # fmt: skip
        total_after = sum(t.symbol == "ETHUSDT" and t.trade_ts >= cut for t in ticks)
        await eventually(reached(total_after // 4), 30, "progress")
        first.send_signal(signal.SIGKILL)  # mid-stream: the writer is still writing
        first.wait(10)
        at_kill = await processed()
        assert 0 < at_kill < total_after and not writer.done()
        resumed = {s: streamid.ms_of(p.last_id) for s, p in (await load_cursor(aredis)).items()}
        second = start()
        try:
            await writer
            await eventually(reached(total_after), 40, "every tick")
            snap = await final_snapshot(aredis, ticks, PAIR)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            first.kill()
    return at_kill, resumed, snap


async def test_the_gateways_funding_figures_become_the_pairs_carry(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    """The engine reads each leg's funding from the gateway's ``state:feed`` hash (once a
    second) into the pair's snapshot: the fields that do not depend on the hedge equal
    ``analytics.carry`` on the figures written here, to the last bit."""
    y_leg = an.LegFunding(2450.5, 2449.25, 0.00025, 1_795_334_400_000, 28_800_000)
    x_leg = an.LegFunding(97_120.0, 97_131.5, -0.0001, 1_795_320_000_000, 14_400_000)
    for symbol, leg in zip(PAIR.split("/"), (y_leg, x_leg), strict=True):
        await aredis.hset(keys.feed_state(symbol), mapping={
            "mark_price": leg.mark_price, "index_price": leg.index_price,
            "funding_rate": leg.funding_rate, "next_funding_ms": leg.next_funding_ms,
            "funding_interval_ms": leg.interval_ms, "last_price": "1",
        })  # fmt: skip
    want = an.carry(y_leg, x_leg, beta=1.0, half_life_s=60.0, now_ms=1_795_300_000_000)
    hedge_free = ("funding_diff_bps", "funding_diff_ann_pct", "mark_index_y_bps",
                  "mark_index_x_bps")  # fmt: skip
    async with running_engine(engine_settings(settings, [PAIR], WINDOW)) as engine:
        await asyncio.wait_for(engine.ready.wait(), 20)
        await publish(aredis, sim_ticks([PAIR], 5, seed=3))

        async def carried() -> dict[str, float] | None:
            snap = await snapshot(aredis, PAIR)
            return snap if "funding_diff_bps" in snap else None

        snap = await eventually(carried, 20, "the pair's carry")
    assert isinstance(snap, dict)
    assert {name: snap[name] for name in hedge_free} == {name: want[name] for name in hedge_free}
