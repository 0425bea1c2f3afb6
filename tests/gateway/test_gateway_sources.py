"""The offline sources end to end through the real gateway: replay files and the sim market."""

import asyncio
import zipfile
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys, tickschema
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.gateway.replay import write_frames
from spreadbus.gateway.service import Gateway
from spreadbus.testing.binance_server import build_agg_trade_frames

pytestmark = pytest.mark.slow
BINANCE_URL = "wss://fstream.binance.com/market/stream"


async def run_until(gateway: Gateway, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 20)


async def test_replay_of_recorded_frames_and_a_zipped_csv(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    folder = tmp_path / "replay"
    folder.mkdir()
    frames = build_agg_trade_frames(["BTCUSDT"], 500, start_time_ms=1_795_300_000_000)
    recorded = [(1_795_300_000 + i / 100, f) for i, f in enumerate(frames)]
    write_frames(folder / "btc.frames", recorded, url=f"{BINANCE_URL}?streams=btcusdt@aggTrade")
    rows = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
    rows += [f"{i},3500.{i % 100:02d},0.500,{i},{i},{1_795_300_000_000 + i * 3},true"
             for i in range(1, 301)]  # fmt: skip
    with zipfile.ZipFile(folder / "ETHUSDT-aggTrades-2026-11-21.zip", "w") as archive:
        archive.writestr("ETHUSDT-aggTrades-2026-11-21.csv", "\n".join(rows) + "\n")
    gateway = Gateway(
        settings.model_copy(update={"source": f"replay:{folder}", "speed": 0.0,
                                    "pairs": ("ETHUSDT/BTCUSDT",)}),
        aredis, EventLog("gateway"),
    )  # fmt: skip
    await run_until(gateway, seconds=4.0)
    btc = tickschema.decode_all(await aredis.xrange(keys.tick_stream("BTCUSDT")), "BTCUSDT")
    eth = tickschema.decode_all(await aredis.xrange(keys.tick_stream("ETHUSDT")), "ETHUSDT")
    assert len(btc) == 500 and len(eth) == 300
    assert [t.trade_id for t in eth] == list(range(1, 301))
    assert eth[7].price == "3500.08" and eth[7].side == "sell" and eth[7].source == "replay"
    assert gateway.ingest.counters["malformed"] == 0
    assert await aredis.xlen(keys.ghost_stream("ETHUSDT")) == 300  # every tick shadowed
    candles = await aredis.execute_command(
        "TS.RANGE", keys.candle_series("ETHUSDT", "volume"), "-", "+", "LATEST"
    )
    assert sum(float(v) for _, v in candles) == pytest.approx(300 * 0.5, rel=1e-12)


async def test_sim_source_fills_streams_candles_and_symbol_state(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    gateway = Gateway(
        settings.model_copy(update={"source": "sim", "speed": 1.0,
                                    "pairs": ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT")}),
        aredis, EventLog("gateway"),
    )  # fmt: skip
    await run_until(gateway, seconds=4.0)
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert await aredis.xlen(keys.tick_stream(symbol)) == gateway.ingest.per_symbol[symbol]
        state = await aredis.hgetall(keys.feed_state(symbol))
        assert b"latency_ingest_p99_ms" in state and state[b"source"] == b"sim"
        assert float(state[b"last_price"]) > 0
    assert gateway.ingest.counters["published"] > 0
    health = gateway.health()
    assert health["worst_latency_ingest_p99_ms"] >= 0
    assert health["worst_latency_exchange_p99_ms"] >= 1  # the sim's event lags its trade
