"""The Redis side of publishing: series and rules, exact candles, idempotency on trade id."""

import random
import re

import pandas as pd
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.bus.ticks import (
    FUNCTION_NAME,
    SymbolBatch,
    TickWriter,
    WriteError,
    WriteResult,
    _call_arguments,
    ensure_symbol_series,
    last_trades,
)
from spreadbus.testing.candles import candles_from_ticks, read_candles


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


async def test_ticks_refused_between_accepted_ones_leave_no_trace_in_the_series(
    aredis: aioredis.Redis,
) -> None:
    """Late trades (an id below one already written: refused by the stream) sit between
    accepted ones, in the same millisecond and across minutes, with prices and quantities the
    candles would show if they leaked in. The candles and the price series must be those of the
    accepted ticks alone, as the stream itself holds them."""
    ticks = make_ticks("BTCUSDT", 2400, seed=11)
    rng = random.Random(5)
    late = [
        t._replace(trade_id=t.trade_id - 1, price="999.99", qty="777.777")
        for t in ticks
        if rng.random() < 0.25 and t.trade_id > 1
    ]
    by_id = sorted(late, key=lambda t: t.trade_id)
    sent: list[Tick] = []
    for tick in ticks:  # each late trade right after the accepted one it is older than
        sent.append(tick)
        while by_id and by_id[0].trade_id < tick.trade_id:
            sent.append(by_id.pop(0))
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    results = WriteResult()
    for start in range(0, len(sent), 29):
        result = await writer.write({"BTCUSDT": SymbolBatch(sent[start : start + 29], [])})
        results.added += result.added
        results.duplicates += result.duplicates
    assert (results.added, results.duplicates) == (len(ticks), len(late))
    stored = tickschema.decode_all(await aredis.xrange(keys.tick_stream("BTCUSDT")), "BTCUSDT")
    assert stored == ticks
    got, want = await read_candles(aredis, "BTCUSDT"), candles_from_ticks(ticks)
    assert got[["open", "high", "low", "close"]].equals(want[["open", "high", "low", "close"]])
    assert got["volume"].tolist() == pytest.approx(want["volume"].tolist(), rel=1e-9)
    rows = await aredis.execute_command("TS.RANGE", keys.price_series("BTCUSDT"), "-", "+")
    assert {int(ts): float(v) for ts, v in rows} == {t.trade_ts: float(t.price) for t in ticks}


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
    assert tickschema.decode_all(entries, "ETHUSDT") == ticks
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
    assert tickschema.decode_all(ghost_entries, "SOLUSDT") == ghosts
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


# ---- faults: a Redis that answers with errors -------------------------------------------------
async def write_all(writer: TickWriter, symbol: str, ticks: list[Tick], size: int) -> WriteResult:
    total = WriteResult()
    for start in range(0, len(ticks), size):
        result = await writer.write({symbol: SymbolBatch(ticks[start : start + size], [])})
        total.added += result.added
        total.duplicates += result.duplicates
        total.repairs += result.repairs
        total.function_reloads += result.function_reloads
        total.refused_samples += result.refused_samples
    return total


def assert_candles_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.index) == list(want.index)
    for field in ("open", "high", "low", "close"):  # prices as sent: exact
        assert got[field].tolist() == want[field].tolist(), field
    assert got["volume"].tolist() == pytest.approx(want["volume"].tolist(), rel=1e-9)


async def test_a_call_refused_for_a_missing_series_writes_nothing(aredis: aioredis.Redis) -> None:
    """All or nothing: with one series gone, not even the stream takes the batch (before the
    fix the XADDs went through and the retry saw the trades as duplicates)."""
    ticks = make_ticks("BTCUSDT", 200, seed=3)
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    await writer.write({"BTCUSDT": SymbolBatch(ticks[:100], [])})
    await aredis.delete(keys.candle_source_series("BTCUSDT", "volume"))
    names, values = _call_arguments([("BTCUSDT", SymbolBatch(ticks[100:], []))])
    with pytest.raises(redis.exceptions.ResponseError, match="SPREADBUS_MISSING_SERIES"):
        await aredis.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *values)
    assert await aredis.xlen(keys.tick_stream("BTCUSDT")) == 100
    assert await aredis.execute_command("TS.RANGE", keys.price_series("BTCUSDT"), "-", "+") == [
        [t.trade_ts, float(t.price)]
        for t in {t.trade_ts: t for t in ticks[:100]}.values()  # last trade of each ms
    ]


async def test_a_call_whose_counts_do_not_match_its_ticks_is_refused_whole(
    aredis: aioredis.Redis,
) -> None:
    """Counts that do not add up to the ticks after them (one value short or over, a count
    that is negative or not a number) are refused before anything is written; the call as
    the writer makes it then goes through."""
    batches = {
        "BTCUSDT": SymbolBatch(make_ticks("BTCUSDT", 5, seed=1), []),
        "ETHUSDT": SymbolBatch(
            [], [t._replace(source="ghost") for t in make_ticks("ETHUSDT", 3, 2)]
        ),
    }
    writer = TickWriter(aredis)
    await writer.prepare(list(batches))
    names, values = _call_arguments(list(batches.items()))
    broken: list[list[object]] = [
        values[:-1],
        [*values, "extra"],
        [values[0], -1, *values[2:]],  # BTCUSDT: -1 real ticks
        [*values[:5], "x", *values[6:]],  # ETHUSDT: "x" real ticks
    ]
    for args in broken:
        with pytest.raises(redis.exceptions.ResponseError, match="do not match the tick counts"):
            await aredis.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *args)
    assert await aredis.exists(keys.tick_stream("BTCUSDT"), keys.ghost_stream("ETHUSDT")) == 0
    reply = await aredis.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *values)
    assert reply == [5, 0, 3, 0]
    assert await aredis.xlen(keys.ghost_stream("ETHUSDT")) == 3


async def test_a_call_of_150_symbols_checks_every_series_and_is_all_or_nothing(
    aredis: aioredis.Redis,
) -> None:
    """One call for 150 symbols checks 1,500 series (more than one EXISTS chunk of the Lua
    library): a missing one near the end is named and nothing at all is written, not even the
    first symbol's ticks; once it is back, every symbol gets its ticks and its candles."""
    symbols = [f"S{i:03d}USDT" for i in range(150)]
    ticks = {s: make_ticks(s, 3, seed=i) for i, s in enumerate(symbols)}
    writer = TickWriter(aredis)
    await writer.prepare(symbols)
    gone = keys.candle_series(symbols[140], "volume")  # past the first 1,000 series keys
    await aredis.delete(gone)
    names, values = _call_arguments([(s, SymbolBatch(t, [])) for s, t in ticks.items()])
    named = re.escape(f"SPREADBUS_MISSING_SERIES {gone}")
    with pytest.raises(redis.exceptions.ResponseError, match=named):
        await aredis.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *values)
    assert [await aredis.exists(keys.tick_stream(s)) for s in symbols] == [0] * 150
    await ensure_symbol_series(aredis, symbols[140])
    result = await writer.write({s: SymbolBatch(t, []) for s, t in ticks.items()})
    assert (result.added, result.duplicates, result.refused_samples) == (450, 0, 0)
    for symbol in (symbols[0], symbols[140], symbols[-1]):
        got, want = await read_candles(aredis, symbol), candles_from_ticks(ticks[symbol])
        assert got[["open", "high", "low", "close"]].equals(want[["open", "high", "low", "close"]])


@pytest.mark.parametrize("ghost", [False, True])
async def test_a_stream_key_of_another_type_is_named_and_nothing_is_written(
    aredis: aioredis.Redis, ghost: bool
) -> None:
    """Every stream a call writes is type-checked before anything is written (by one XREAD a
    thousand streams, so the key here sits in the second chunk): a key another program made a
    string is named, no symbol gets a tick, and once it is gone the same batches go in whole."""
    symbols = [f"W{i:03d}USDT" for i in range(520)]  # 1,040 streams: two XREAD chunks
    ticks = {s: make_ticks(s, 2, seed=i) for i, s in enumerate(symbols)}
    ghosts = {s: [t._replace(source="ghost") for t in ticks[s]] for s in symbols}
    writer = TickWriter(aredis)
    await writer.prepare(symbols)
    victim = symbols[510]
    taken = keys.ghost_stream(victim) if ghost else keys.tick_stream(victim)
    await aredis.set(taken, "another program's value")
    batches = {s: SymbolBatch(ticks[s], ghosts[s]) for s in symbols}
    names, values = _call_arguments(list(batches.items()))
    named = re.escape(f"SPREADBUS_WRONG_TYPE {taken}")
    with pytest.raises(redis.exceptions.ResponseError, match=named):
        await aredis.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *values)
    written = [keys.tick_stream(s) for s in symbols] + [keys.ghost_stream(s) for s in symbols]
    assert await aredis.exists(*written) == 1  # the victim's string, nothing else
    await aredis.delete(taken)
    result = await writer.write(batches)
    assert (result.added, result.duplicates, result.ghosts) == (1040, 0, 1040)


@pytest.mark.parametrize(
    "deleted",
    [
        keys.price_series("BTCUSDT"),  # the raw prices, also the close source
        keys.candle_source_series("BTCUSDT", "open"),
        keys.candle_source_series("BTCUSDT", "volume"),
    ],
)
async def test_a_series_deleted_mid_run_is_rebuilt_and_candles_stay_exact(
    aredis: aioredis.Redis, deleted: str
) -> None:
    ticks = make_ticks("BTCUSDT", 3000, seed=11)
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    first = await write_all(writer, "BTCUSDT", ticks[:1234], 97)
    assert await aredis.delete(deleted) == 1  # mid-minute: the open candle loses its samples
    rest = await write_all(writer, "BTCUSDT", ticks[1234:], 97)
    assert (first.added + rest.added, rest.duplicates, rest.repairs) == (3000, 0, 1)
    assert rest.refused_samples == 0
    assert await aredis.xlen(keys.tick_stream("BTCUSDT")) == 3000
    assert_candles_equal(await read_candles(aredis, "BTCUSDT"), candles_from_ticks(ticks))


async def test_a_refill_reads_nine_field_entries_of_the_previous_version(
    aredis: aioredis.Redis,
) -> None:
    """An upgrade mid-minute: the building minute's first entries are in the older nine-field
    layout, the rest compact. A source series deleted then is refilled from both (the Lua
    refill decodes either layout), and the candles come out exact."""
    ticks = make_ticks("BTCUSDT", 3000, seed=12)
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    await write_all(writer, "BTCUSDT", ticks[:1234], 97)
    minute_ms = ticks[1233].trade_ts // 60_000 * 60_000
    in_minute = [i for i, t in enumerate(ticks[:1234]) if t.trade_ts >= minute_ms]
    split = in_minute[len(in_minute) // 2]
    assert len(in_minute) >= 2 and split > in_minute[0]  # both layouts in the minute
    stream = keys.tick_stream("BTCUSDT")
    await aredis.delete(stream)  # the same entries again, the older half as the old gateway's
    async with aredis.pipeline(transaction=False) as pipe:
        for i, tick in enumerate(ticks[:1234]):
            fields = tickschema.legacy_fields(tick) if i < split else tickschema.to_fields(tick)
            pipe.xadd(stream, fields, id=tick.stream_id)  # type: ignore[arg-type]
        await pipe.execute()
    assert await aredis.delete(keys.candle_source_series("BTCUSDT", "high")) == 1
    rest = await write_all(writer, "BTCUSDT", ticks[1234:], 97)
    assert (rest.added, rest.repairs, rest.refused_samples) == (3000 - 1234, 1, 0)
    assert_candles_equal(await read_candles(aredis, "BTCUSDT"), candles_from_ticks(ticks))


async def test_a_candle_series_deleted_mid_run_is_exact_again_from_that_minute(
    aredis: aioredis.Redis,
) -> None:
    """Deleting a candle series takes its rule: recreated, and its open minute rebuilt from
    the stream. Earlier minutes of that series are gone with it (kept nowhere else)."""
    ticks = make_ticks("ETHUSDT", 3000, seed=12)
    writer = TickWriter(aredis)
    await writer.prepare(["ETHUSDT"])
    await write_all(writer, "ETHUSDT", ticks[:1500], 50)
    await aredis.delete(keys.candle_series("ETHUSDT", "high"))
    minute_ms = ticks[1499].trade_ts // 60_000 * 60_000
    rest = await write_all(writer, "ETHUSDT", ticks[1500:], 50)
    assert rest.repairs == 1
    got, want = await read_candles(aredis, "ETHUSDT"), candles_from_ticks(ticks)
    assert got.loc[got.index >= minute_ms, "high"].tolist() == want.loc[minute_ms:, "high"].tolist()
    assert got["high"].dropna().index.min() == minute_ms
    for field in ("open", "low", "close"):
        assert got[field].tolist() == want[field].tolist(), field


async def test_function_flush_and_flushall_are_cured_within_the_write(
    aredis: aioredis.Redis,
) -> None:
    ticks = make_ticks("SOLUSDT", 1200, seed=13)
    writer = TickWriter(aredis)
    await writer.prepare(["SOLUSDT"])
    await write_all(writer, "SOLUSDT", ticks[:300], 100)
    await aredis.execute_command("FUNCTION", "FLUSH")
    after_flush = await write_all(writer, "SOLUSDT", ticks[300:600], 100)
    assert (after_flush.added, after_flush.function_reloads, after_flush.repairs) == (300, 1, 0)
    await aredis.flushall()  # streams and series gone (functions survive FLUSHALL)
    after_all = await write_all(writer, "SOLUSDT", ticks[600:900], 100)
    assert (after_all.added, after_all.function_reloads, after_all.repairs) == (300, 0, 1)
    await aredis.flushall()  # ... and both: what a fresh server looks like
    await aredis.execute_command("FUNCTION", "FLUSH")
    fresh = await write_all(writer, "SOLUSDT", ticks[900:], 100)
    assert (fresh.added, fresh.function_reloads, fresh.repairs) == (300, 1, 1)
    entries = await aredis.xrange(keys.tick_stream("SOLUSDT"))
    assert tickschema.decode_all(entries, "SOLUSDT") == ticks[900:]
    assert_candles_equal(await read_candles(aredis, "SOLUSDT"), candles_from_ticks(ticks[900:]))


async def test_out_of_memory_writes_nothing_and_the_same_batch_goes_in_later(
    aredis: aioredis.Redis,
) -> None:
    ticks = make_ticks("BNBUSDT", 400, seed=14)
    writer = TickWriter(aredis)
    await writer.prepare(["BNBUSDT"])
    await write_all(writer, "BNBUSDT", ticks[:200], 100)
    saved = await aredis.config_get("maxmemory*")
    try:
        await aredis.config_set("maxmemory-policy", "noeviction")
        await aredis.config_set("maxmemory", "1")
        with pytest.raises(WriteError) as refused:
            await writer.write({"BNBUSDT": SymbolBatch(ticks[200:], [])})
        assert (refused.value.kind, refused.value.failed) == ("out_of_memory", {"BNBUSDT"})
        assert await aredis.xlen(keys.tick_stream("BNBUSDT")) == 200
    finally:
        for name in ("maxmemory", "maxmemory-policy"):
            await aredis.config_set(name, saved[name])
    result = await writer.write({"BNBUSDT": SymbolBatch(ticks[200:], [])})
    assert (result.added, result.duplicates) == (200, 0)
    assert_candles_equal(await read_candles(aredis, "BNBUSDT"), candles_from_ticks(ticks))
