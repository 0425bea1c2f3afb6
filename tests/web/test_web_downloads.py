"""``/api/downloads`` over the real app: ticks from the archive and the live stream with an
overlap between them come out each exactly once and equal to the ticks written; bars equal a
pandas resample of those ticks; analytics history joins archive and Redis by time."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis

from spreadbus.archivist.layout import date_of_ms
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields
from spreadbus.research import downloads

T0 = 1_795_000_020_000 // 60_000 * 60_000 + 30_000
N = 100


def _truth() -> list[Tick]:
    return [
        Tick("BTCUSDT", 500 + i, f"{98000 + (i * 37) % 101}.{i % 10}", f"0.{i % 9 + 1}",
             "buy" if i % 3 else "sell", T0 + 700 * i, T0 + 700 * i + 2, T0 + 700 * i + 5.25,
             "binance")
        for i in range(N)
    ]  # fmt: skip


def _sid(tick: Tick) -> str:
    """The gateway's entry id of a real tick: ``<trade ms>-<trade id>`` (bus.tickschema)."""
    return f"{tick.trade_ts}-{tick.trade_id}"


async def _setup_ticks(aredis: aioredis.Redis, part_writer: Callable[..., Path]) -> list[Tick]:
    """Ticks 0-59 archived (with ghost copies that must not come out), 40-99 in the stream."""
    truth = _truth()
    archived = truth[:60]
    rows: dict[str, list[object]] = {name: [] for name in (
        "ts", "venue", "trade_id", "price", "qty", "side", "event_ts", "recv_ts", "price_text",
        "qty_text", "stream_id")}  # fmt: skip
    for venue in ("binance", "ghost"):
        for t in archived:
            rows["ts"].append(t.trade_ts)
            rows["venue"].append(venue)
            rows["trade_id"].append(t.trade_id)
            rows["price"].append(float(t.price) + (5 if venue == "ghost" else 0))
            rows["qty"].append(float(t.qty))
            rows["side"].append(t.side)
            rows["event_ts"].append(t.event_ts)
            rows["recv_ts"].append(int(t.recv_ts * 1000))
            rows["price_text"].append(t.price)
            rows["qty_text"].append(t.qty)
            rows["stream_id"].append(_sid(t))
    part_writer("ticks", "BTCUSDT", date_of_ms(T0), rows)
    for t in truth[40:]:
        fields = to_fields(t)
        await aredis.xadd(keys.tick_stream("BTCUSDT"), fields, id=_sid(t))  # type: ignore[arg-type]
    return truth


def _expected(truth: list[Tick]) -> list[list[str]]:
    return [
        [_sid(t), t.symbol, str(t.trade_id), t.price, t.qty, t.side, str(t.trade_ts),
         str(t.event_ts), f"{t.recv_ts:.2f}".rstrip("0").rstrip("."), t.source]
        for t in truth
    ]  # fmt: skip


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("chunk", [20_000, 7])
async def test_ticks_join_archive_and_stream_each_once(
    api: httpx.AsyncClient,
    aredis: aioredis.Redis,
    part_writer: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    monkeypatch.setattr(downloads, "CHUNK", chunk)
    truth = await _setup_ticks(aredis, part_writer)
    answer = await api.get(
        "/api/downloads/ticks", params={"symbol": "btcusdt", "start_ms": T0, "end_ms": T0 + 10**6}
    )
    assert answer.status_code == 200
    rows = _rows(answer.text)
    assert tuple(rows[0]) == downloads.TICK_COLUMNS
    assert rows[1:] == _expected(truth)  # 100 ticks: 0-59 archive, 60-99 stream, seam at 59
    part = await api.get(
        "/api/downloads/ticks",
        params={"symbol": "BTCUSDT", "start_ms": T0 + 7000, "end_ms": T0 + 63_000},
    )
    assert _rows(part.text)[1:] == _expected(truth[10:90])


async def test_ticks_as_parquet(
    api: httpx.AsyncClient, aredis: aioredis.Redis, part_writer: Callable[..., Path], data_dir: Path
) -> None:
    truth = await _setup_ticks(aredis, part_writer)
    answer = await api.get(
        "/api/downloads/ticks",
        params={"symbol": "BTCUSDT", "start_ms": T0, "end_ms": T0 + 10**6, "format": "parquet"},
    )
    assert answer.status_code == 200
    table = pq.read_table(io.BytesIO(answer.content)).to_pylist()
    assert [r["trade_id"] for r in table] == [t.trade_id for t in truth]
    assert [r["price"] for r in table] == [t.price for t in truth]
    assert [r["stream_id"] for r in table] == [_sid(t) for t in truth]
    assert list((data_dir / ".downloads").iterdir()) == []  # the temporary file is gone


@pytest.mark.parametrize(("bar", "bar_ms"), [("1s", 1000), ("1m", 60_000)])
async def test_bars_equal_a_pandas_resample_of_the_ticks(
    api: httpx.AsyncClient,
    aredis: aioredis.Redis,
    part_writer: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    bar: str,
    bar_ms: int,
) -> None:
    """Chunks of 7 ticks, so bars are cut between chunks and seconds with no trade fall
    between chunks: each must still come out once, merged or filled."""
    monkeypatch.setattr(downloads, "CHUNK", 7)
    truth = await _setup_ticks(aredis, part_writer)
    answer = await api.get(
        "/api/downloads/bars",
        params={"symbol": "BTCUSDT", "start_ms": T0, "end_ms": T0 + 10**6, "bar": bar},
    )
    assert answer.status_code == 200
    got = pd.read_csv(io.StringIO(answer.text))
    frame = pd.DataFrame(
        {"bar": [t.trade_ts // bar_ms * bar_ms for t in truth],
         "price": [float(t.price) for t in truth], "qty": [float(t.qty) for t in truth]}
    )  # fmt: skip
    grouped = frame.groupby("bar")
    ref = pd.DataFrame(
        {"open": grouped.price.first(), "high": grouped.price.max(), "low": grouped.price.min(),
         "close": grouped.price.last(), "volume": grouped.qty.sum(),
         "trades": grouped.price.count()}
    )  # fmt: skip
    full = range(int(ref.index[0]), int(ref.index[-1]) + 1, bar_ms)
    ref = ref.reindex(full)
    ref["close"] = ref["close"].ffill()
    for column in ("open", "high", "low"):
        ref[column] = ref[column].fillna(ref["close"])
    ref = ref.fillna({"volume": 0.0, "trades": 0})
    assert got["ts_ms"].tolist() == list(full)
    for column in ("open", "high", "low", "close", "trades"):
        assert got[column].tolist() == ref[column].tolist(), column
    assert got["volume"].to_numpy() == pytest.approx(ref["volume"].to_numpy(), abs=1e-9)


async def test_analytics_history_joins_archive_then_redis(
    api: httpx.AsyncClient, aredis: aioredis.Redis, part_writer: Callable[..., Path]
) -> None:
    """Seconds 0-59 archived (beta = i), 40-99 in Redis (beta = 1000 + i): 0-59 from the
    archive, 60-99 from Redis, each once."""
    pair = "ETHUSDT/BTCUSDT"
    seconds = [T0 + 1000 * i for i in range(100)]
    rows = {"ts": seconds[:60], "beta": [float(i) for i in range(60)]}
    for metric in ("spread", "zscore", "corr", "adf_pvalue"):
        rows[metric] = [0.5] * 60
    part_writer("analytics", pair, date_of_ms(T0), rows)
    key = keys.analytics_series(pair, "beta")
    await aredis.execute_command("TS.CREATE", key)  # type: ignore[no-untyped-call]
    samples = [a for i in range(40, 100) for a in (key, seconds[i], 1000.0 + i)]
    await aredis.execute_command("TS.MADD", *samples)  # type: ignore[no-untyped-call]
    answer = await api.get(
        "/api/downloads/analytics",
        params={"pair": "ETHUSDT-BTCUSDT", "start_ms": T0, "end_ms": T0 + 10**6},
    )
    assert answer.status_code == 200
    got = pd.read_csv(io.StringIO(answer.text))
    assert got["ts_ms"].tolist() == seconds
    assert got["beta"].tolist() == [float(i) for i in range(60)] + [
        1000.0 + i for i in range(60, 100)
    ]
    assert got["zscore"].iloc[:60].tolist() == [0.5] * 60
    assert got["zscore"].iloc[60:].isna().all()  # Redis has no zscore series here


async def test_download_problems(api: httpx.AsyncClient) -> None:
    backwards = await api.get(
        "/api/downloads/ticks", params={"symbol": "BTCUSDT", "start_ms": 10, "end_ms": 5}
    )
    assert backwards.status_code == 422
    assert "before start_ms" in backwards.json()["detail"]
    for kind in ("ticks", "bars", "analytics"):  # an empty range is a valid empty file
        name = {"pair": "ETHUSDT/BTCUSDT"} if kind == "analytics" else {"symbol": "BTCUSDT"}
        nothing = await api.get(
            f"/api/downloads/{kind}", params={**name, "start_ms": 7, "end_ms": 7}
        )
        assert nothing.status_code == 200, (kind, nothing.text)
        header = {"ticks": downloads.TICK_COLUMNS, "bars": downloads.BAR_COLUMNS}
        assert _rows(nothing.text) == [list(header.get(kind, downloads.ANALYTICS_COLUMNS))]
    bad = await api.get(
        "/api/downloads/ticks", params={"symbol": "../x", "start_ms": 0, "end_ms": 5}
    )
    assert bad.status_code == 422
    empty = await api.get(
        "/api/downloads/ticks", params={"symbol": "BTCUSDT", "start_ms": 0, "end_ms": 5}
    )
    assert empty.status_code == 200
    assert _rows(empty.text) == [list(downloads.TICK_COLUMNS)]
