"""``/api/symbols/{symbol}``: snapshot, 1-minute candles (JSON and CSV) and tick CSV, over
what the gateway's own writer stores."""

from __future__ import annotations

import csv
import io

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.ticks import SymbolBatch, TickWriter

T0 = 1_795_305_480_000  # a minute boundary
MIN = 60_000


def _tick(trade_id: int, ms: int, price: str, qty: str, side: str = "buy") -> Tick:
    return Tick("BTCUSDT", trade_id, price, qty, side, ms, ms + 1, ms + 2.25, "binance")  # type: ignore[arg-type]


async def test_snapshot_404_and_422(api: httpx.AsyncClient, sync_redis: redis.Redis) -> None:
    sync_redis.hset(
        keys.feed_state("BTCUSDT"),
        mapping={"last_price": "97000.10", "tick_rate": "12.5", "source": "sim", "ticks_total": 9},
    )
    sync_redis.hset(keys.analytics_state("BTCUSDT"), mapping={"trade_rate_10s": "3.25"})
    body = (await api.get("/api/symbols/btcusdt")).json()
    assert body == {
        "symbol": "BTCUSDT",
        "fields": {"last_price": 97000.1, "source": "sim", "tick_rate": 12.5, "ticks_total": 9,
                   "trade_rate_10s": 3.25},
    }  # fmt: skip
    assert (await api.get("/api/symbols/ETHUSDT")).status_code == 404
    for bad in ("BTC-USDT", "B", "BTC%2FUSDT", "BTC$"):
        assert (await api.get(f"/api/symbols/{bad}")).status_code in (404, 422), bad
    assert (await api.get("/api/symbols/BTC$")).status_code == 422
    assert (await api.get("/api/symbols/x/ohlc")).status_code == 422
    assert (await api.get("/api/symbols/x/ticks.csv")).status_code == 422


async def test_ohlc_rows_equal_the_series_values(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    inserted = {
        T0: (100.5, 101.25, 99.75, 100.0, 3.5),
        T0 + MIN: (100.0, 100.0, 98.125, 98.5, 0.001),
        T0 + 3 * MIN: (98.5, 102.0, 98.5, 101.0, 12.0),  # a minute without trades before it
    }
    for ts, values in inserted.items():
        for field, value in zip(keys.CANDLE_FIELDS, values, strict=True):
            await aredis.execute_command("TS.ADD", keys.candle_series("BTCUSDT", field), ts, value)

    response = await api.get("/api/symbols/BTCUSDT/ohlc?minutes=60")
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BTCUSDT"
    assert body["interval"] == "1m"
    assert [
        (c["ts"], (c["open"], c["high"], c["low"], c["close"], c["volume"]))
        for c in body["candles"]
    ] == list(inserted.items())

    # the window ends at the newest candle: 2 minutes = that candle and the one before
    recent = (await api.get("/api/symbols/BTCUSDT/ohlc?minutes=2")).json()["candles"]
    assert [c["ts"] for c in recent] == [T0 + 3 * MIN]
    recent = (await api.get("/api/symbols/BTCUSDT/ohlc?minutes=3")).json()["candles"]
    assert [c["ts"] for c in recent] == [T0 + MIN, T0 + 3 * MIN]

    as_csv = await api.get("/api/symbols/BTCUSDT/ohlc?format=csv")
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == ["ts_ms", "time", "open", "high", "low", "close", "volume"]
    assert [(int(r[0]), tuple(float(v) for v in r[2:])) for r in rows[1:]] == list(inserted.items())
    assert rows[1][1] == "2026-11-21T23:58:00.000Z"


async def test_ohlc_from_real_ticks_includes_the_open_minute(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    ticks = [
        _tick(1, T0 + 5, "100.5", "1"),
        _tick(2, T0 + 5, "101.0", "2"),  # same millisecond: still exact
        _tick(3, T0 + 30_000, "99.5", "0.5"),
        _tick(4, T0 + 59_999, "100.0", "0.25"),
        _tick(5, T0 + MIN + 1, "102.0", "4"),  # the current minute: only LATEST shows it
        _tick(6, T0 + MIN + 2, "101.5", "1"),
    ]
    await writer.write({"BTCUSDT": SymbolBatch(ticks, [])})

    candles = (await api.get("/api/symbols/BTCUSDT/ohlc")).json()["candles"]
    assert candles == [
        {"ts": T0, "open": 100.5, "high": 101.0, "low": 99.5, "close": 100.0, "volume": 3.75},
        {"ts": T0 + MIN, "open": 102.0, "high": 102.0, "low": 101.5, "close": 101.5,
         "volume": 5.0},
    ]  # fmt: skip


async def test_ticks_csv_keeps_the_exact_price_text(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    prices = ["97000.10", "97000.1", "0.00001230", "97000.00", "1e-5"]
    ticks = [_tick(i + 1, T0 + i, p, "0.0100", "sell" if i % 2 else "buy") for i, p in
             enumerate(prices)]  # fmt: skip
    await writer.write({"BTCUSDT": SymbolBatch(ticks, [])})

    response = await api.get("/api/symbols/BTCUSDT/ticks.csv?limit=4")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["price"] for r in rows] == prices[1:]  # the latest 4, oldest first
    assert [r["qty"] for r in rows] == ["0.0100"] * 4
    assert rows[0] == {
        "stream_id": f"{T0 + 1}-2", "symbol": "BTCUSDT", "trade_id": "2", "price": "97000.1",
        "qty": "0.0100", "side": "sell", "trade_ts": str(T0 + 1), "event_ts": str(T0 + 2),
        "recv_ts": f"{T0 + 3.25:.3f}", "source": "binance",
    }  # fmt: skip

    everything = await api.get("/api/symbols/BTCUSDT/ticks.csv")
    assert len(everything.text.splitlines()) == 1 + len(prices)


async def test_ticks_csv_errors_and_skipped_entries(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    assert (await api.get("/api/symbols/BTCUSDT/ticks.csv")).status_code == 404
    assert (await api.get("/api/symbols/BTCUSDT/ohlc")).status_code == 404
    await aredis.xadd(keys.tick_stream("BTCUSDT"), {"junk": "1"})
    response = await api.get("/api/symbols/BTCUSDT/ticks.csv")
    assert response.status_code == 200
    assert response.text.splitlines() == [
        "stream_id,symbol,trade_id,price,qty,side,trade_ts,event_ts,recv_ts,source"
    ]
    for query in ("limit=0", "limit=10001", "venue=other", "limit=x"):
        assert (await api.get(f"/api/symbols/BTCUSDT/ticks.csv?{query}")).status_code == 422
    assert (await api.get("/api/symbols/BTCUSDT/ohlc?format=xml")).status_code == 422
    assert (await api.get("/api/symbols/BTCUSDT/ticks.csv?venue=ghost")).status_code == 404


@pytest.mark.parametrize("interval", ["5m", "15m", "1h"])
async def test_longer_candles_equal_pandas_candles_of_the_ticks(
    api: httpx.AsyncClient, aredis: aioredis.Redis, interval: str
) -> None:
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    rng = np.random.default_rng(3)
    # 3 hours of trades, a few a minute, several sharing a millisecond
    times = np.sort(rng.integers(T0, T0 + 3 * 3_600_000, 900))
    prices = np.round(100 + np.cumsum(rng.normal(0, 0.2, times.size)), 1)
    qtys = rng.integers(1, 50, times.size) / 100
    ticks = [
        _tick(i + 1, int(t), f"{p:.1f}", f"{q:.2f}")
        for i, (t, p, q) in enumerate(zip(times, prices, qtys, strict=True))
    ]
    for start in range(0, len(ticks), 97):  # several flushes, as the gateway writes them
        await writer.write({"BTCUSDT": SymbolBatch(ticks[start : start + 97], [])})

    answer = await api.get(f"/api/symbols/BTCUSDT/ohlc?interval={interval}&minutes=1440")
    assert answer.status_code == 200
    got = pd.DataFrame(answer.json()["candles"]).set_index("ts")
    frame = pd.DataFrame({"price": prices, "qty": qtys}, index=pd.to_datetime(times, unit="ms"))
    rule = {"5m": "5min", "15m": "15min", "1h": "1h"}[interval]
    want = frame["price"].resample(rule).ohlc().join(frame["qty"].resample(rule).sum())
    want = want.dropna()
    want.index = want.index.as_unit("ms").asi8  # epoch ms, whatever unit pandas chose
    assert list(got.index) == list(want.index)
    for column in ("open", "high", "low", "close"):
        assert got[column].tolist() == want[column].tolist(), column  # exact: trade prices
    assert np.allclose(got["volume"], want["qty"], rtol=1e-12)
