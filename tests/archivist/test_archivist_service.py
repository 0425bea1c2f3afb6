"""The Archivist in-process against a real Redis and real files."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import redis

from spreadbus.archivist import reader
from spreadbus.archivist.compaction import compact_archive
from spreadbus.archivist.service import ArchivistError
from spreadbus.bus import keys
from spreadbus.config import Settings

if TYPE_CHECKING:
    from conftest import ArchiveView, Market

PAIR = "ETHUSDT/BTCUSDT"
BASE_MS = 1795305480000  # 2026-11-21 23:58 UTC, where the market fixture starts
SYMBOLS = ("ETHUSDT", "BTCUSDT")
Run = Callable[[Settings], AbstractAsyncContextManager[Any]]
Wait = Callable[..., Awaitable[None]]


async def test_every_tick_archived_once_per_symbol_and_venue(
    arch_settings: Settings,
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    root = archive.root
    for symbol in SYMBOLS:  # 900 trades 150 ms apart from 23:58 UTC: across midnight
        market.publish(symbol, 300, step_ms=150)
    async with run_archivist(arch_settings) as service:
        for _ in range(3):  # more ticks while it runs: several batches
            for symbol in SYMBOLS:
                market.publish(symbol, 200, step_ms=150)
            await asyncio.sleep(0.35)
        total = len(market.published)
        await wait_for(lambda: service.counters["ticks_archived"] == total, what="archive")
        health = service.health()
    got = archive.assert_exactly_once(market)

    assert health["ticks_spooled"] == total
    assert health["files_written"] >= 4
    assert health["lag"] == 0
    assert health["last_write_ms"] > 0
    # types and values a researcher relies on
    assert str(got["ts"].dtype) == "datetime64[ms, UTC]"
    assert str(got["recv_ts"].dtype) == "datetime64[us, UTC]"
    assert got["price"].dtype == np.float64
    assert got["qty"].dtype == np.float64
    assert (got["price"] == got["price_text"].astype(float)).all()
    assert set(got["side"]) == {"buy", "sell"}
    real = got[got["venue"] == "sim"]
    assert (
        real["stream_id"]
        == real["ts"].astype("int64").astype(str) + "-" + real["trade_id"].astype(str)
    ).all()
    # the ticks cross midnight: two date partitions, each row in the right one
    assert set(got["date"].astype(str)) == {"2026-11-21", "2026-11-22"}
    assert (got["ts"].dt.strftime("%Y-%m-%d") == got["date"].astype(str)).all()
    assert (root / "ticks" / "symbol=BTCUSDT" / "date=2026-11-22").is_dir()
    assert not [p for p in archive.visible_files() if not p.name.endswith(".parquet")]
    assert not list(root.rglob("*.tmp"))
    # the Redis cursor hash reports how far the spool got
    client = redis.Redis.from_url(arch_settings.redis_url or "")
    cursor = client.hgetall(keys.archivist_cursor())
    client.close()
    assert cursor[keys.tick_stream("BTCUSDT").encode()].decode() == max(
        (s for sym, v, s, _ in market.published if sym == "BTCUSDT" and v == "sim"),
        key=lambda s: tuple(map(int, s.split("-"))),
    )


async def test_restarts_resume_without_loss_or_duplicates(
    make_settings: Callable[..., Settings],
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    # A long interval: only the flush at start-up and the one on a clean stop write Parquet.
    cfg = make_settings(archive_interval=60)
    archived = 0
    for _ in range(3):
        for symbol in SYMBOLS:  # published while no archivist runs
            market.publish(symbol, 150)
        async with run_archivist(cfg) as service:
            new = len(market.published) - archived
            await wait_for(lambda s=service, n=new: s.counters["ticks_spooled"] == n)
            for symbol in SYMBOLS:  # and while it runs
                market.publish(symbol, 50)
            new = len(market.published) - archived
            await wait_for(lambda s=service, n=new: s.counters["ticks_spooled"] == n)
        archived = len(market.published)
        archive.assert_exactly_once(market)  # the stop flushed everything
    assert len(archive.visible_files()) >= 3


async def test_ticks_trimmed_after_spooling_are_still_archived(
    make_settings: Callable[..., Settings],
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    cfg = make_settings(archive_interval=60)
    async with run_archivist(cfg) as service:
        await wait_for(lambda: service.counters["batches"] == 0 and service._opened)
        for symbol in SYMBOLS:
            market.publish(symbol, 400)
        total = len(market.published)
        await wait_for(lambda: service.counters["ticks_spooled"] == total, what="spool")
        for symbol in SYMBOLS:  # Redis trims everything: only the spool has them now
            market.trim_all(symbol)
            assert market.client.xlen(keys.tick_stream(symbol)) == 0
        assert service.counters["ticks_archived"] == 0
    archive.assert_exactly_once(market)


async def test_second_archivist_on_same_archive_is_refused(
    arch_settings: Settings, run_archivist: Run, wait_for: Wait
) -> None:
    async with run_archivist(arch_settings) as service:
        await wait_for(lambda: service._opened)
        with pytest.raises(ArchivistError, match="another archivist"):
            async with run_archivist(arch_settings):
                pass


async def test_follows_config_pairs(
    arch_settings: Settings,
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    market.publish("SOLUSDT", 50, ghost=False)
    async with run_archivist(arch_settings) as service:
        await wait_for(lambda: service._opened)
        assert "SOLUSDT" not in service.symbols
        market.client.sadd(keys.CONFIG_PAIRS, "SOLUSDT/ETHUSDT")
        market.client.publish(keys.CHANNEL_CONFIG, "pairs")
        await wait_for(lambda: service.counters["ticks_archived"] == 50, what="SOLUSDT")
        assert service.symbols == ("SOLUSDT", "ETHUSDT")
    got = archive.read("ticks")
    assert set(got["symbol"].astype(str)) == {"SOLUSDT"}


async def test_candles_equal_candles_of_archived_ticks(
    arch_settings: Settings,
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    root = archive.root
    for symbol in SYMBOLS:
        market.create_candle_series(symbol)
    async with run_archivist(arch_settings) as service:
        for _ in range(4):  # 4 x 80 s of trades from 23:58, 3 per millisecond: 5 closed minutes
            for symbol in SYMBOLS:
                market.publish(symbol, 300, step_ms=800, per_ms=3)
            await asyncio.sleep(0.3)
        await wait_for(lambda: service.counters["candles_archived"] == 2 * 5, what="candles")
        await asyncio.sleep(0.4)  # another interval: the open minute must not appear
        assert service.counters["candles_archived"] == 2 * 5
        # A late trade (say, a REST backfill) lands in a closed, archived minute: Redis
        # recomputes that candle and the Archivist writes it again; the newest row wins.
        late_ms = BASE_MS + 3 * 60_000 + 5  # 00:01:00.005
        for name in ("high", "volume"):
            series = keys.candle_source_series("BTCUSDT", name)
            market.client.execute_command("TS.ADD", series, late_ms, "500.5")
        await wait_for(lambda: service.counters["candles_archived"] == 2 * 5 + 1, what="revision")
    ticks = archive.read("ticks")
    compact_archive(root, 1, "2100-01-01")  # merges every partition: the revision wins
    candles = archive.read("candles")
    assert len(candles) == 2 * 5
    assert not candles.duplicated(["symbol", "ts"]).any()
    for symbol in SYMBOLS:
        real = ticks[(ticks["symbol"] == symbol) & (ticks["venue"] == "sim")]
        real = real.sort_values(["ts", "trade_id"]).set_index("ts")
        expected = pd.DataFrame(
            {
                "open": real["price"].resample("1min").first(),
                "high": real["price"].resample("1min").max(),
                "low": real["price"].resample("1min").min(),
                "close": real["price"].resample("1min").last(),
                "volume": real["qty"].resample("1min").sum(),
            }
        ).iloc[:-1]  # the last minute is still open
        if symbol == "BTCUSDT":  # the revised minute, as Redis recomputed it
            minute = pd.Timestamp(BASE_MS + 3 * 60_000, unit="ms", tz="UTC")
            expected.loc[minute, "high"] = 500.5
            expected.loc[minute, "volume"] += 500.5
        got = candles[candles["symbol"] == symbol].set_index("ts").sort_index()
        via_reader = reader.read_candles(root, symbol).set_index("ts")
        for frame in (got, via_reader):
            assert list(frame.index) == list(expected.index)
            for column in ("open", "high", "low", "close"):
                assert (frame[column] == expected[column]).all(), column
            assert np.allclose(frame["volume"], expected["volume"], rtol=1e-12)


def _add_analytics(client: redis.Redis, start_s: int, seconds: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(start_s, start_s + seconds):
        ts = 1795305590000 + i * 1000  # crosses midnight UTC at i = 10
        for j, metric in enumerate(("beta", "spread", "zscore", "corr", "adf_pvalue")):
            if metric == "adf_pvalue" and i % 5:
                continue  # a slower metric: only every 5 s
            pipe.execute_command("TS.ADD", keys.analytics_series(PAIR, metric), ts, i + j / 10)
    pipe.execute()


async def test_analytics_history_archived_once(
    arch_settings: Settings,
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    root = archive.root
    _add_analytics(market.client, 0, 20)
    async with run_archivist(arch_settings) as service:
        await wait_for(lambda: service.counters["analytics_archived"] >= 19, what="analytics")
        _add_analytics(market.client, 20, 10)
        await wait_for(lambda: service.counters["analytics_archived"] >= 29, what="more")
    frame = reader.read_analytics(root, PAIR)
    assert len(frame) == 29  # the newest second is held back until the next one arrives
    assert set(frame["pair"]) == {PAIR}
    assert not frame.duplicated("ts").any()
    assert list(frame["beta"]) == [float(i) for i in range(29)]
    assert list(frame["adf_pvalue"].dropna()) == [i + 0.4 for i in range(0, 29, 5)]
    assert (root / "analytics" / "pair=ETHUSDT-BTCUSDT").is_dir()
    raw = archive.read("analytics")  # any reader: pair comes from the path
    assert set(raw["pair"].astype(str)) == {"ETHUSDT-BTCUSDT"}
    assert set(raw["date"].astype(str)) == {"2026-11-21", "2026-11-22"}


async def test_readers_never_fail_or_see_partial_files_during_writes(
    make_settings: Callable[..., Settings],
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
) -> None:
    # Today's dates (no day-over compaction) and no size compaction: only part writes.
    cfg = make_settings(archive_interval=0.1, archive_compact_parts=10_000)
    root = archive.root
    now_ms = int(time.time() * 1000)
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def read_forever() -> None:
        while not done.is_set():
            try:
                if (root / "ticks").exists():
                    seen.append(len(pd.read_parquet(root / "ticks")))
                    reader.read_ticks(root, "BTCUSDT")
                    names = [p.name for p in archive.visible_files()]
                    assert not [n for n in names if not n.endswith(".parquet")], names
            except BaseException as exc:  # reported by the test
                errors.append(exc)
                return

    thread = threading.Thread(target=read_forever)
    thread.start()
    try:
        async with run_archivist(cfg) as service:
            for _ in range(25):
                for symbol in SYMBOLS:
                    market.publish(symbol, 40, start_ms=now_ms)
                await asyncio.sleep(0.05)
            total = len(market.published)
            await wait_for(lambda: service.counters["ticks_archived"] == total)
    finally:
        done.set()
        thread.join()
    assert not errors, errors[0]
    assert len(seen) > 5
    assert seen == sorted(seen)  # rows only ever appear, never vanish or repeat
    archive.assert_exactly_once(market)


async def test_reports_ticks_trimmed_before_they_were_spooled(
    make_settings: Callable[..., Settings],
    market: Market,
    archive: ArchiveView,
    run_archivist: Run,
    wait_for: Wait,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = make_settings(archive_interval=60)
    market.publish("BTCUSDT", 20)
    async with run_archivist(cfg) as service:
        await wait_for(lambda: service.counters["ticks_spooled"] == 40)
    market.publish("BTCUSDT", 30)  # while no archivist runs ...
    market.trim_all("BTCUSDT")  # ... Redis drops them: they are lost, and it must say so
    market.publish("BTCUSDT", 5)
    async with run_archivist(cfg) as service:
        await wait_for(lambda: service.counters["ticks_spooled"] == 10)
        await wait_for(lambda: service.counters["gaps"] == 2)  # the real and the ghost stream
        assert service.counters["ticks_lost"] == 2 * 30
    assert "ticks lost to stream trimming" in caplog.text
    got = archive.read("ticks")
    assert len(got) == 50  # 20 + 5 real and ghost: all that could still be read, once
    assert not got.duplicated(["venue", "stream_id"]).any()
