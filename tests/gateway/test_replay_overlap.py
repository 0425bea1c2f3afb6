"""Replay into a bus that already holds newer trades: said loudly at start (a log line and a
health field naming a separate data dir), instead of every tick vanishing as a duplicate."""

import asyncio
import logging
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.config import Settings
from spreadbus.gateway.replay import discover, find_overlaps, write_frames
from spreadbus.gateway.service import Gateway
from spreadbus.testing.binance_server import build_agg_trade_frames
from spreadbus.testing.services import running_service

T0 = 1_795_300_000_000
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"


def write_csv(folder: Path, symbol: str, first_id: int, t0: int, n: int) -> None:
    rows = [AGG_HEADER] + [
        f"{first_id + i},100.{i % 90:02d},0.5,{i},{i},{t0 + i * 10},true" for i in range(n)
    ]
    (folder / f"{symbol}-aggTrades-2026-11-21.csv").write_text("\n".join(rows) + "\n")


async def replay_gateway(settings: Settings, folder: Path, expect_ticks: int) -> Gateway:
    settings = settings.model_copy(
        update={"source": f"replay:{folder}", "speed": 0.0, "pairs": ("ETHUSDT/BTCUSDT",)}
    )
    async with running_service(Gateway, settings) as gateway:
        deadline = time.monotonic() + 20
        while gateway.ingest.counters["ticks"] + gateway.ingest.counters["duplicates"] < (
            expect_ticks
        ):
            assert time.monotonic() < deadline, "the replay did not get through its rows"
            await asyncio.sleep(0.05)
    return gateway


@pytest.mark.slow
async def test_replay_older_than_the_bus_is_announced_at_start_and_in_health(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the bus already holds BTCUSDT trades up to T0 + 1 h (an earlier run in this data dir)
    writer = TickWriter(aredis)
    await writer.prepare(["BTCUSDT"])
    later = T0 + 3_600_000
    await writer.write(
        {
            "BTCUSDT": SymbolBatch(
                [Tick("BTCUSDT", 5, "99.5", "1", "buy", later, later, 0.0, "x")], []
            )
        }
    )
    folder = tmp_path / "replay"
    folder.mkdir()
    write_csv(folder, "BTCUSDT", 1, T0, 300)  # all before what the bus holds
    write_csv(folder, "ETHUSDT", 1, T0, 200)  # a symbol the bus has never seen
    caplog.set_level(logging.ERROR, logger="spreadbus.gateway")
    gateway = await replay_gateway(settings, folder, 500)

    notice = str(gateway.health()["notice_replay_overlap"])
    assert "BTCUSDT" in notice and "ETHUSDT" not in notice
    assert f"--data-dir {settings.data_dir.resolve().parent / 'data-replay'}" in notice
    assert any(
        "BTCUSDT" in r.getMessage() and "--data-dir" in r.getMessage() for r in caplog.records
    )
    # what the notice warned about, exactly: BTC's 300 rows refused, ETH's 200 all in
    assert gateway.ingest.counters["duplicates"] == 300
    assert await aredis.xlen(keys.tick_stream("BTCUSDT")) == 1
    assert await aredis.xlen(keys.tick_stream("ETHUSDT")) == 200


@pytest.mark.slow
async def test_replay_into_an_empty_bus_has_no_notice(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "replay"
    folder.mkdir()
    write_csv(folder, "BTCUSDT", 1, T0, 100)
    gateway = await replay_gateway(settings, folder, 100)
    assert gateway.ingest.counters["duplicates"] == 0
    assert not any(name.startswith("notice_") for name in gateway.health())


def test_overlap_is_found_from_the_first_frame_of_a_frames_file(tmp_path: Path) -> None:
    frames = build_agg_trade_frames(["BTCUSDT", "SOLUSDT"], 50, start_time_ms=T0)
    write_frames(tmp_path / "x.frames", [(T0 / 1000 + i, f) for i, f in enumerate(frames)])
    files, _ = discover(tmp_path / "x.frames")
    found = find_overlaps(files, {"BTCUSDT": (T0 + 10**6, 1), "SOLUSDT": (T0 - 10**6, 1)})
    assert [o.symbol for o in found] == ["BTCUSDT"]
    assert found[0].bus_last_ms == T0 + 10**6 and found[0].replay_first_ms >= T0
