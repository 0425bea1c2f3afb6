"""The Redis side of publishing: series and rules, exact candles, idempotency on trade id."""

import random

import pandas as pd
import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick, tick_from_fields
from spreadbus.bus.ticks import SymbolBatch, TickWriter, ensure_symbol_series, last_trades


def make_ticks(symbol: str, n: int, seed: int, start_ms: int = 1_795_314_900_000) -> list[Tick]:
    """Random trades, many per millisecond, crossing several minute boundaries."""
    rng = random.Random(seed)
    out, ms = [], start_ms
    for trade_id in range(1, n + 1):
        ms += rng.choice([0, 0, 0, 1, 7, 450])  # bursts: often the same millisecond
        price = f"{rng.uniform(90, 110):.2f}"
        qty = f"{rng.uniform(0.001, 3):.3f}"
        out.append(Tick(symbol, trade_id, price, qty, "buy", ms, ms, ms + 0.5, "sim"))
    return out


def candles_from_ticks(ticks: list[Tick]) -> pd.DataFrame:
    """The reference: pandas resampling of the raw ticks (arrival order = trade order)."""
    frame = pd.DataFrame(
        {"price": [float(t.price) for t in ticks], "qty": [float(t.qty) for t in ticks]},
        index=pd.to_datetime([t.trade_ts for t in ticks], unit="ms"),
    )
    bars = frame.resample("1min").agg({"price": ["first", "max", "min", "last"], "qty": "sum"})
    bars.columns = ["open", "high", "low", "close", "volume"]
    bars = bars.dropna()
    bars.index = (bars.index - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    return bars


async def read_candles(client: aioredis.Redis, symbol: str) -> pd.DataFrame:
    columns = {}
    for field in keys.CANDLE_FIELDS:
        rows = await client.execute_command(
            "TS.RANGE", keys.candle_series(symbol, field), "-", "+", "LATEST"
        )
        columns[field] = {int(ts): float(v) for ts, v in rows}
    return pd.DataFrame(columns)


@pytest.mark.parametrize("flush_size", [1, 37, 5000])
async def test_candles_equal_candles_of_the_raw_ticks(
    aredis: aioredis.Redis, flush_size: int
) -> None:
    ticks = make_ticks("BTCUSDT", 3000, seed=flush_size)
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    for start in range(0, len(ticks), flush_size):
        await writer.write({"BTCUSDT": SymbolBatch(ticks[start : start + flush_size], [])})
    got = await read_candles(aredis, "BTCUSDT")
    want = candles_from_ticks(ticks)
    assert list(got.index) == list(want.index)
    # open/high/low/close are prices as sent: exact. Volume is a float sum: 1e-9 relative.
    for field in ("open", "high", "low", "close"):
        assert got[field].tolist() == want[field].tolist(), field
    assert got["volume"].tolist() == pytest.approx(want["volume"].tolist(), rel=1e-9)


async def test_one_call_carries_many_symbols_and_each_gets_its_own_candles(
    aredis: aioredis.Redis,
) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    ticks = {s: make_ticks(s, 800, seed=i) for i, s in enumerate(symbols)}
    writer = TickWriter(aredis)
    await writer.prepare(symbols)
    for start in range(0, 800, 53):
        result = await writer.write(
            {s: SymbolBatch(t[start : start + 53], []) for s, t in ticks.items()}
        )
        assert result.added == sum(len(t[start : start + 53]) for t in ticks.values())
    for symbol, sent in ticks.items():
        got, want = await read_candles(aredis, symbol), candles_from_ticks(sent)
        assert got[["open", "high", "low", "close"]].equals(want[["open", "high", "low", "close"]])
        assert got["volume"].tolist() == pytest.approx(want["volume"].tolist(), rel=1e-9)


async def test_raw_price_series_holds_the_last_trade_of_each_millisecond(
    aredis: aioredis.Redis,
) -> None:
    ticks = make_ticks("BTCUSDT", 1000, seed=7)
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    for start in range(0, len(ticks), 41):
        await writer.write({"BTCUSDT": SymbolBatch(ticks[start : start + 41], [])})
    rows = await aredis.execute_command("TS.RANGE", keys.price_series("BTCUSDT"), "-", "+")
    last_of_ms = {t.trade_ts: float(t.price) for t in ticks}  # later trades overwrite
    assert {int(ts): float(v) for ts, v in rows} == last_of_ms


async def test_replaying_ticks_does_not_double_count(aredis: aioredis.Redis) -> None:
    ticks = make_ticks("ETHUSDT", 500, seed=1)
    writer = TickWriter(aredis)
    await writer.prepare(["ETHUSDT"])
    first = await writer.write({"ETHUSDT": SymbolBatch(ticks[:300], [])})
    again = await writer.write({"ETHUSDT": SymbolBatch(ticks, [])})  # a restart replays all
    assert (first.added, first.duplicates) == (300, 0)
    assert (again.added, again.duplicates) == (200, 300)
    assert await aredis.xlen(keys.tick_stream("ETHUSDT")) == 500
    got = await read_candles(aredis, "ETHUSDT")
    assert got["volume"].sum() == pytest.approx(sum(float(t.qty) for t in ticks), rel=1e-9)
    entries = await aredis.xrange(keys.tick_stream("ETHUSDT"))
    assert [tick_from_fields(fields) for _, fields in entries] == ticks
    assert [eid.decode() for eid, _ in entries] == [t.stream_id for t in ticks]
    assert await last_trades(aredis, ["ETHUSDT", "NOPEUSDT"]) == {
        "ETHUSDT": (ticks[-1].trade_ts, ticks[-1].trade_id)
    }


async def test_ghost_ticks_and_trimming(aredis: aioredis.Redis) -> None:
    ticks = make_ticks("SOLUSDT", 200, seed=2)
    ghosts = [Tick(t.symbol, t.trade_id, t.price, t.qty, t.side, t.trade_ts, t.event_ts,
                   t.recv_ts, "ghost") for t in ticks[:10]]  # fmt: skip
    writer = TickWriter(aredis)
    await writer.prepare(["SOLUSDT"])
    cut = ticks[150].trade_ts
    result = await writer.write({"SOLUSDT": SymbolBatch(ticks, ghosts, cut_ms=cut)})
    assert result.ghosts == 10
    ghost_entries = await aredis.xrange(keys.ghost_stream("SOLUSDT"))
    assert [tick_from_fields(f) for _, f in ghost_entries] == ghosts
    remaining = await aredis.xrange(keys.tick_stream("SOLUSDT"))
    # MINID ~ trims whole nodes only: nothing newer than the cut is lost, older may stay
    assert int(remaining[-1][0].split(b"-")[0]) == ticks[-1].trade_ts
    assert all(t.trade_ts < cut for t in ticks[: 200 - len(remaining)])


async def test_preparing_twice_is_harmless_and_rules_exist(aredis: aioredis.Redis) -> None:
    await ensure_symbol_series(aredis, "BNBUSDT")
    await ensure_symbol_series(aredis, "BNBUSDT")
    info = await aredis.execute_command("TS.INFO", keys.candle_source_series("BNBUSDT", "high"))
    assert info[b"duplicatePolicy"] == b"max"
    assert keys.candle_series("BNBUSDT", "high").encode() in info[b"rules"]
    labels = (await aredis.execute_command("TS.INFO", keys.price_series("BNBUSDT")))[b"labels"]
    assert labels == {b"symbol": b"BNBUSDT", b"kind": b"price"}
