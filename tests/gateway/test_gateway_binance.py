"""The gateway against a local server that speaks Binance's protocol, on a real Redis.

Every test counts: what the server sent must be in the stream once, in order, nothing more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys, tickschema
from spreadbus.bus.configstore import set_pairs
from spreadbus.config import Settings
from spreadbus.gateway.service import Gateway
from spreadbus.proc import free_port
from spreadbus.testing.binance_server import BinanceServer
from spreadbus.testing.services import running_service

pytestmark = pytest.mark.slow


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def running_gateway(
    settings: Settings, client: aioredis.Redis, **overrides: Any
) -> AbstractAsyncContextManager[Gateway]:
    return running_service(
        Gateway, settings.model_copy(update=overrides), client=client, stop_timeout=15
    )


def binance_settings(settings: Settings, server: BinanceServer, **extra: Any) -> dict[str, Any]:
    return {
        "source": "binance",
        "binance_ws_url": server.ws_url,
        "binance_rest_url": server.rest_url,
        "pairs": ("ETHUSDT/BTCUSDT",),
        "ghost_delay_ms": 5.0,
        "ghost_delay_jitter_ms": 2.0,
        **extra,
    }


async def stream_ticks(client: aioredis.Redis, symbol: str, ghost: bool = False) -> list[Any]:
    key = keys.ghost_stream(symbol) if ghost else keys.tick_stream(symbol)
    return [(eid, tickschema.decode(f, eid, symbol)) for eid, f in await client.xrange(key)]


def sent_ids(server: BinanceServer, symbol: str) -> list[int]:
    return [row["a"] for row in server.agg_trades(symbol)]


async def wait_for_ids(client: aioredis.Redis, server: BinanceServer, symbol: str) -> list[int]:
    want = sent_ids(server, symbol)

    async def ids() -> list[int] | None:
        got = [t.trade_id for _, t in await stream_ticks(client, symbol)]
        return got if got == want else None

    got = await eventually(ids)
    have = [t.trade_id for _, t in await stream_ticks(client, symbol)]
    assert got == want, f"{symbol}: want {len(want)} ids, have {len(have)}: {have[-5:]}"
    return want


async def publish(server: BinanceServer, symbol: str, n: int, price: float = 100.0) -> None:
    for i in range(n):
        server.publish_agg_trade(symbol, f"{price + i * 0.01:.2f}", "0.010", buyer_maker=i % 2 == 0)
    await server.flush()


async def test_every_frame_arrives_once_in_its_stream_with_ghosts_after_their_delay(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with BinanceServer(ping_interval=0.2) as server:
        async with running_gateway(settings, aredis, **binance_settings(settings, server)) as gw:
            await server.wait_for_subscribers("btcusdt@aggTrade")
            await server.wait_for_subscribers("ethusdt@aggTrade")
            await publish(server, "BTCUSDT", 300, 98000.0)
            await publish(server, "ETHUSDT", 200, 3500.0)
            await wait_for_ids(aredis, server, "BTCUSDT")
            await wait_for_ids(aredis, server, "ETHUSDT")
            real = await stream_ticks(aredis, "BTCUSDT")
            sent = server.agg_trades("BTCUSDT")
            assert [t.price for _, t in real] == [row["p"] for row in sent]  # exact text
            assert [t.side for _, t in real] == ["sell" if r["m"] else "buy" for r in sent]
            assert [eid.decode() for eid, _ in real] == [f"{r['T']}-{r['a']}" for r in sent]
            ghosts = await eventually(lambda: _ghosts_if_complete(aredis, "BTCUSDT", len(sent)))
            # one ghost per real trade; published in due order (random delays), not trade order
            assert sorted(g.trade_id for _, g in ghosts) == [r["a"] for r in sent]
            recv = {t.trade_id: t.recv_ts for _, t in real}
            for entry_id, ghost in ghosts:
                published_ms = int(entry_id.split(b"-")[0])
                assert ghost.source == "ghost"
                assert ghost.recv_ts > recv[ghost.trade_id]  # it has a delay ...
                assert published_ms >= int(ghost.recv_ts)  # ... and was held back for it

            async def pinged() -> bool:
                return server.counters.pings_answered > 0

            assert await eventually(pinged, 5)  # server pings (every 0.2 s) are answered
            assert gw.ingest.counters["duplicates"] == 0


async def _ghosts_if_complete(client: aioredis.Redis, symbol: str, n: int) -> list[Any] | None:
    ghosts = await stream_ticks(client, symbol, ghost=True)
    return ghosts if len(ghosts) == n else None


async def test_disconnect_gap_is_back_filled_from_rest_in_order(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with BinanceServer() as server:
        opts = binance_settings(settings, server)
        async with running_gateway(settings, aredis, **opts) as gw:
            await server.wait_for_subscribers("btcusdt@aggTrade")
            await publish(server, "BTCUSDT", 50)
            await wait_for_ids(aredis, server, "BTCUSDT")
            await server.disconnect_all()
            await publish(server, "BTCUSDT", 20)  # nobody is listening: a gap of 20
            await server.wait_for_subscribers("btcusdt@aggTrade")
            await publish(server, "BTCUSDT", 30)
            await wait_for_ids(aredis, server, "BTCUSDT")
            assert gw.ingest.counters["gaps"] == 1
            assert gw.ingest.counters["missed"] == 20
            assert gw.ingest.counters["backfilled"] == 20
            assert gw.ingest.counters["reconnects"] >= 1
            assert any("fapi/v1/aggTrades" in line for line in server.rest_log)


async def test_rollover_before_the_cut_loses_and_duplicates_nothing(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with BinanceServer() as server:
        opts = binance_settings(settings, server, binance_max_connection_age=0.5)
        async with running_gateway(settings, aredis, **opts) as gw:
            await server.wait_for_subscribers("btcusdt@aggTrade")
            for _ in range(30):  # trades keep flowing across several rollovers
                await publish(server, "BTCUSDT", 5)
                await asyncio.sleep(0.05)
            await wait_for_ids(aredis, server, "BTCUSDT")
            assert gw.ingest.counters["rollovers"] >= 1
            assert gw.ingest.counters["gaps"] == 0
            assert gw.ingest.counters["duplicates"] >= 0  # overlap copies were dropped ...
            assert gw.ingest.counters["published"] == len(sent_ids(server, "BTCUSDT"))


async def test_silent_feed_is_noticed_and_reconnected(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with BinanceServer() as server:
        opts = binance_settings(settings, server, binance_idle_timeout=0.5)
        async with running_gateway(settings, aredis, **opts) as gw:
            await server.wait_for_subscribers("btcusdt@aggTrade")
            server.silence(1.2)
            assert await eventually(lambda: _counter(gw, "idle_reconnects", 1), 10)
            await asyncio.sleep(1.0)
            server.resume()
            await server.wait_for_subscribers("btcusdt@aggTrade")
            await publish(server, "BTCUSDT", 10)
            await wait_for_ids(aredis, server, "BTCUSDT")


async def _counter(gw: Gateway, name: str, at_least: int) -> bool:
    return gw.ingest.counters[name] >= at_least


async def test_pairs_change_live_subscribes_and_unsubscribes(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with BinanceServer() as server:
        async with running_gateway(settings, aredis, **binance_settings(settings, server)):
            await server.wait_for_subscribers("btcusdt@aggTrade")
            await set_pairs(aredis, ["ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT"])
            await server.wait_for_subscribers("solusdt@aggTrade")
            await publish(server, "SOLUSDT", 25, 180.0)
            await wait_for_ids(aredis, server, "SOLUSDT")
            await set_pairs(aredis, ["SOLUSDT/ETHUSDT"])

            async def btc_gone() -> bool:
                return not any("btcusdt@aggTrade" in c.subscriptions for c in server.connections)

            assert await eventually(btc_gone)
            messages = [m for c in server.connections for m in c.control_messages]
            methods = [orjson.loads(m)["method"] for m in messages]
            assert "SUBSCRIBE" in methods and "UNSUBSCRIBE" in methods
            assert server.counters.rate_limit_drops == 0


async def test_bad_input_is_counted_and_survived(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    bad = [
        "{not json",
        '{"stream":"btcusdt@aggTrade","data":{"e":"depthUpdate","s":"BTCUSDT"}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","a":1}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":9,'
        '"p":"abc","q":"1","T":1,"m":true}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":9,'
        '"p":"-5.0","q":"1","T":1,"m":true}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":9,'
        '"p":"0.00","q":"1","T":1,"m":true}}',
        '{"stream":"xrpusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"XRPUSDT","a":9,'
        '"p":"2.5","q":"1","T":1,"m":true}}',
        '{"code":2,"msg":"Invalid request","id":99}',
        "[1,2,3]",
    ]
    async with BinanceServer() as server:
        async with running_gateway(settings, aredis, **binance_settings(settings, server)) as gw:
            await server.wait_for_subscribers("btcusdt@aggTrade")
            for text in bad:
                server.send_to_all(text)
            await publish(server, "BTCUSDT", 10)
            await wait_for_ids(aredis, server, "BTCUSDT")
            health = gw.health()
            assert health["malformed_by_reason"] == {
                "malformed_json": 1, "unknown_event": 1, "missing_field": 1,
                "bad_number": 2, "bad_price": 1, "not_object": 1,
            }  # fmt: skip
            assert health["unsubscribed"] == 1
            assert health["error_replies"] == 1
            assert health["published"] == 10


async def test_auto_falls_back_to_sim_loudly(settings: Settings, aredis: aioredis.Redis) -> None:
    dead = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    opts = {"source": "auto", "binance_ws_url": dead, "auto_fallback_after": 1.0,
            "pairs": ("ETHUSDT/BTCUSDT",), "speed": 1.0}  # fmt: skip
    async with running_gateway(settings, aredis, **opts) as gw:

        async def both_legs_traded() -> bool:
            lengths = [await aredis.xlen(keys.tick_stream(s)) for s in ("BTCUSDT", "ETHUSDT")]
            return all(lengths)

        assert await eventually(both_legs_traded, 20)
        assert gw.health()["source"].startswith("sim (fallback")
        ticks = await stream_ticks(aredis, "ETHUSDT")
        assert all(t.source == "sim" for _, t in ticks)
