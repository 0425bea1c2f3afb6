"""The local Binance-protocol server behaves as shared/BINANCE.md says, seen from a real client.

Every test talks to the server through the ``websockets`` client library or ``httpx`` (and one
hand-made TCP client that never answers pings), and frames are checked with the gateway's own
parsers, so a disagreement between server and client shows up here.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from spreadbus.bus.codec import Tick
from spreadbus.gateway.binance import (
    ControlReply,
    FrameError,
    combined_url,
    parse_frame,
    parse_rest_agg_trades,
)
from spreadbus.testing.binance_server import (
    BinanceServer,
    build_agg_trade_frames,
    main,
    route_serves,
    stream_route,
)

BTC = "btcusdt@aggTrade"
ETH = "ethusdt@aggTrade"
QUIET = 0.15  # how long "nothing arrives" is watched for


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    async with BinanceServer(ping_interval=None, agg_id_base=100) as srv:
        yield srv


async def recv(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def assert_silent(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), QUIET)


async def request(ws: ClientConnection, message: Any) -> Any:
    await ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())
    return await recv(ws)


# -- routes and modes ----------------------------------------------------------------------------


async def test_combined_mode_wraps_payload_and_client_parser_reads_it(
    server: BinanceServer,
) -> None:
    url = combined_url(server.ws_url, "market", [BTC, ETH])
    async with connect(url) as ws:
        await server.wait_for_subscribers(BTC)
        sent = server.publish_agg_trade(
            "BTCUSDT", "98231.40", "0.012", trade_time_ms=1_795_314_919_485, buyer_maker=True
        )
        frame = await asyncio.wait_for(ws.recv(), 2)
        info = server.connections[0]
    message = orjson.loads(frame)
    assert message == {"stream": BTC, "data": sent}
    assert list(sent) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m"]
    tick = parse_frame(frame, recv_ts=0.0)
    assert isinstance(tick, Tick)
    assert (tick.symbol, tick.trade_id, tick.price, tick.qty, tick.side) == (
        "BTCUSDT",
        100,
        "98231.40",
        "0.012",
        "sell",
    )
    assert tick.trade_ts == 1_795_314_919_485
    assert tick.event_ts >= tick.trade_ts
    assert (info.route, info.combined, info.subscriptions) == ("market", True, [BTC, ETH])


async def test_raw_mode_sends_bare_payload(server: BinanceServer) -> None:
    async with connect(f"{server.ws_url}/market/ws/{BTC}/{ETH}") as ws:
        await server.wait_for_subscribers(ETH)
        sent = server.publish_agg_trade("ETHUSDT", "3500.10", "1.5")
        assert await recv(ws) == sent
        assert server.connections[0].combined is False
        assert server.connections[0].subscriptions == [BTC, ETH]


@pytest.mark.parametrize(
    "path",
    [
        f"/public/stream?streams={BTC}",
        f"/public/ws/{BTC}",
        f"/stream?streams={BTC}",  # legacy, unrouted
        f"/ws/{BTC}",
    ],
)
async def test_trade_streams_are_silent_off_the_market_route(
    server: BinanceServer, path: str
) -> None:
    book = "btcusdt@bookTicker"
    async with connect(server.ws_url + path) as ws:
        await server.wait_for_subscribers(BTC)
        # the handshake completed and SUBSCRIBE is accepted, but no trade ever arrives
        assert await request(ws, {"method": "SUBSCRIBE", "params": [book], "id": 1}) == {
            "result": None,
            "id": 1,
        }
        server.publish_agg_trade("BTCUSDT", "98000.00", "0.001")
        await assert_silent(ws)
        assert server.counters.frames_withheld_by_route == 1
        # ...while public streams do flow on these routes, so the socket itself is fine
        payload = {"e": "bookTicker", "s": "BTCUSDT", "b": "1.0", "B": "2", "a": "1.1", "A": "3"}
        assert server.publish_raw(book, payload) == 1
        message = await recv(ws)
        assert message.get("data", message) == payload


async def test_trade_stream_route_is_a_setting() -> None:
    trade = "btcusdt@trade"
    async with (
        BinanceServer(ping_interval=None, trade_route="public") as srv,
        connect(f"{srv.ws_url}/market/ws/{trade}") as market,
        connect(f"{srv.ws_url}/public/ws/{trade}") as public,
    ):
        await srv.wait_for_subscribers(trade, 2)
        sent = srv.publish_trade("BTCUSDT", "98000.00", "0.002", kind="ADL")
        assert await recv(public) == sent
        await assert_silent(market)
    assert sent["X"] == "ADL"
    assert srv.trades("btcusdt") == [sent]
    assert stream_route(trade) == "market"
    assert route_serves("market", trade)
    assert not route_serves("legacy", BTC)
    assert route_serves("legacy", "btcusdt@depth5@100ms")


@pytest.mark.parametrize("path", ["/nope", "/market/nope", "/market", "/fapi/v2/unknown"])
async def test_unknown_path_is_rejected_with_404(server: BinanceServer, path: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.ws_url + path):
            pass
    assert caught.value.response.status_code == 404


async def test_scripted_handshake_rejection(server: BinanceServer) -> None:
    server.reject_handshakes = 503
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{server.ws_url}/market/ws/{BTC}"):
            pass
    assert caught.value.response.status_code == 503


# -- control messages ----------------------------------------------------------------------------


async def test_subscribe_unsubscribe_list_and_properties(server: BinanceServer) -> None:
    async with connect(f"{server.ws_url}/market/stream") as ws:
        subscribe = {"method": "SUBSCRIBE", "params": [BTC, ETH], "id": 1}
        assert await request(ws, subscribe) == {"result": None, "id": 1}
        unsubscribe = {"method": "UNSUBSCRIBE", "params": [ETH], "id": 2}
        assert await request(ws, unsubscribe) == {"result": None, "id": 2}
        listed = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        assert listed == {"result": [BTC], "id": 3}
        assert parse_frame(orjson.dumps(listed), 0.0) == ControlReply(id=3, result=[BTC])

        assert await request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 4}) == {
            "result": True,
            "id": 4,
        }
        set_raw = {"method": "SET_PROPERTY", "params": ["combined", False], "id": 5}
        assert await request(ws, set_raw) == {"result": None, "id": 5}
        sent = server.publish_agg_trade("BTCUSDT", "1.5", "2")
        assert await recv(ws) == sent  # now bare
        server.publish_agg_trade("ETHUSDT", "1.5", "2")  # unsubscribed: nothing
        await assert_silent(ws)
        assert server.connections[0].received[0] == orjson.dumps(subscribe).decode()
    assert server.counters.control_messages == 5


@pytest.mark.parametrize(
    ("message", "code", "reply_id"),
    [
        ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],', 3, "absent"),
        ("[1, 2]", 2, None),
        ({"method": "SUBSCRIBE", "params": [BTC], "id": "7"}, 2, None),
        ({"method": "SUBSCRIBE", "params": [BTC], "id": -1}, 2, None),
        ({"method": "SUBSCRIBE", "params": [BTC]}, 2, None),
        ({"params": [BTC], "id": 7}, 2, 7),
        ({"method": "SUBSCRIBE", "id": 7}, 2, 7),
        ({"method": "PUBLISH", "params": [BTC], "id": 7}, 2, 7),
        ({"method": "SUBSCRIBE", "params": [BTC], "id": 7, "extra": True}, 2, 7),
        ({"method": "LIST_SUBSCRIPTIONS", "params": [BTC], "id": 7}, 2, 7),
        ({"method": "GET_PROPERTY", "params": ["combined", "more"], "id": 7}, 2, 7),
        ({"method": "GET_PROPERTY", "params": [1], "id": 7}, 2, 7),
        ({"method": "SUBSCRIBE", "params": BTC, "id": 7}, 1, 7),
        ({"method": "SUBSCRIBE", "params": [1], "id": 7}, 1, 7),
        ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 7}, 1, 7),
        ({"method": "SET_PROPERTY", "params": ["compressed", True], "id": 7}, 0, 7),
        ({"method": "GET_PROPERTY", "params": ["compressed"], "id": 7}, 0, 7),
    ],
)
async def test_control_errors(
    server: BinanceServer, message: Any, code: int, reply_id: int | str | None
) -> None:
    async with connect(f"{server.ws_url}/market/ws") as ws:
        reply = await request(ws, message)
        # the connection survives a bad request
        assert await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 8}) == {
            "result": [],
            "id": 8,
        }
    assert reply["code"] == code
    assert isinstance(reply["msg"], str)
    assert reply["msg"]
    if reply_id == "absent":
        assert "id" not in reply
    else:
        assert reply["id"] == reply_id
    parsed = parse_frame(orjson.dumps(reply), 0.0)
    assert isinstance(parsed, ControlReply)
    assert parsed.is_error
    assert parsed.code == code
    assert server.counters.control_errors == 1


async def test_stream_cap_per_connection() -> None:
    async with BinanceServer(ping_interval=None, max_streams=2) as srv:
        async with connect(f"{srv.ws_url}/market/ws/{BTC}") as ws:
            too_many = {"method": "SUBSCRIBE", "params": [ETH, "solusdt@aggTrade"], "id": 1}
            assert (await request(ws, too_many))["code"] == 2
            assert await request(ws, {"method": "SUBSCRIBE", "params": [ETH, BTC], "id": 2}) == {
                "result": None,
                "id": 2,
            }
            assert srv.connections[0].subscriptions == [BTC, ETH]
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"{srv.ws_url}/market/ws/{BTC}/{ETH}/solusdt@aggTrade"):
                pass
        assert caught.value.response.status_code == 400


async def test_more_than_ten_messages_a_second_drops_the_connection(
    server: BinanceServer,
) -> None:
    async with connect(f"{server.ws_url}/market/ws") as ws:
        for i in range(11):
            await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
        replies = [await recv(ws) for _ in range(10)]
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert [r["id"] for r in replies] == list(range(10))  # the ten allowed ones were answered
    assert ws.close_code == 1008
    assert server.counters.rate_limit_drops == 1
    await server.wait_until(lambda: bool(server.closed_connections))
    assert server.closed_connections[0].close_reason == "rate_limit"


async def test_ping_frames_count_toward_the_message_limit(server: BinanceServer) -> None:
    async with connect(f"{server.ws_url}/market/ws", ping_interval=None) as ws:
        for _ in range(11):
            await ws.ping()
        await asyncio.wait_for(ws.wait_closed(), 2)
    assert ws.close_code == 1008
    assert server.counters.rate_limit_drops == 1


async def test_ten_messages_a_second_are_fine(server: BinanceServer) -> None:
    async with connect(f"{server.ws_url}/market/ws") as ws:
        for i in range(10):
            assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": i}))["id"] == i
        await asyncio.sleep(1.0)  # the window slides: ten more are allowed again
        for i in range(10, 15):
            assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": i}))["id"] == i
    assert server.counters.rate_limit_drops == 0


# -- keepalive and connection age ----------------------------------------------------------------


async def test_server_pings_are_answered_by_the_client_library() -> None:
    async with BinanceServer(ping_interval=0.05, pong_timeout=1.0) as srv:
        async with connect(f"{srv.ws_url}/market/ws/{BTC}", ping_interval=None) as ws:
            await srv.wait_until(lambda: srv.connections[0].pings_answered >= 3, what="3 pongs")
            await ws.pong(b"")  # an unsolicited pong is allowed and changes nothing
            info = srv.connections[0]
            await srv.wait_until(lambda: info.unsolicited_pongs == 1, what="unsolicited pong")
            sent = srv.publish_agg_trade("BTCUSDT", "1.0", "1.0")
            assert await recv(ws) == sent
        await srv.wait_until(lambda: bool(srv.closed_connections))
        info = srv.closed_connections[0]
        assert info.pings_sent >= info.pings_answered >= 3
        assert info.close_reason == "client"
        assert srv.counters.pong_timeouts == 0


async def test_client_that_never_pongs_is_disconnected() -> None:
    async with BinanceServer(ping_interval=0.05, pong_timeout=0.3, close_timeout=0.2) as srv:
        # A hand-made WebSocket client that reads bytes and never answers anything.
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(
            f"GET /market/ws/{BTC} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        received = await asyncio.wait_for(reader.read(), 10)  # until the server hangs up
        elapsed = time.monotonic() - started
        writer.close()
        await writer.wait_closed()
        assert received[:1] == b"\x89"  # the first thing the server sent was a ping frame
        assert 0.3 <= elapsed < 5.0
        assert srv.counters.pong_timeouts == 1
        await srv.wait_until(lambda: bool(srv.closed_connections))
        info = srv.closed_connections[0]
        assert info.close_reason == "pong_timeout"
        assert info.pings_answered == 0
        assert info.pings_sent >= 2


async def test_connection_is_closed_at_max_age() -> None:
    async with BinanceServer(ping_interval=None, max_age=0.3) as srv:
        async with connect(f"{srv.ws_url}/market/ws/{BTC}") as ws:
            started = time.monotonic()
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert 0.25 <= time.monotonic() - started < 5.0
        assert ws.close_code == 1000
        assert srv.counters.max_age_closes == 1
        await srv.wait_until(lambda: bool(srv.closed_connections))
        assert srv.closed_connections[0].close_reason == "max_age"


@pytest.mark.parametrize(("code", "seen"), [(1006, 1006), (1012, 1012)])
async def test_disconnect_all(server: BinanceServer, code: int, seen: int) -> None:
    async with connect(f"{server.ws_url}/market/ws/{BTC}") as ws:
        await server.wait_for_connections(1)
        assert await server.disconnect_all(code=code) == 1
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(ws.recv(), 2)
    assert ws.close_code == seen
    if code == 1006:
        assert isinstance(caught.value, ConnectionClosedError)
        assert caught.value.rcvd is None  # no close frame: cut like a network failure
    assert server.connections == []


async def test_restart_on_the_same_port_keeps_history(server: BinanceServer) -> None:
    url = f"{server.ws_url}/market/ws/{BTC}"
    server.publish_agg_trade("BTCUSDT", "1", "1")
    await server.stop()
    with pytest.raises(ConnectionRefusedError):
        async with connect(url, open_timeout=1):
            pass
    await server.start()
    async with connect(url) as ws:
        await server.wait_for_subscribers(BTC)
        sent = server.publish_agg_trade("BTCUSDT", "2", "1")
        assert await recv(ws) == sent
    assert [row["a"] for row in server.agg_trades("BTCUSDT")] == [100, 101]


# -- scripting, silence and REST backfill --------------------------------------------------------


async def test_silence_drops_live_trades_and_rest_backfill_serves_them(
    server: BinanceServer,
) -> None:
    async with connect(f"{server.ws_url}/market/stream?streams={BTC}") as ws:
        await server.wait_for_subscribers(BTC)
        server.publish_agg_trade("BTCUSDT", "100.0", "1")
        server.silence(5.0)
        dropped = [server.publish_agg_trade("BTCUSDT", f"10{i}.0", "1") for i in range(1, 4)]
        assert server.silenced
        assert server.connections  # silent, not disconnected
        server.resume()
        server.publish_agg_trade("BTCUSDT", "104.0", "1")
        ids = [(await recv(ws))["data"]["a"] for _ in range(2)]
    assert ids == [100, 104]  # the client sees a gap...
    assert server.counters.frames_dropped_silenced == 3

    async with httpx.AsyncClient(base_url=server.rest_url) as http:
        response = await http.get(
            "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": 101, "limit": 3}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    rows = response.json()
    assert rows == [{k: d[k] for k in ("a", "p", "q", "f", "l", "T", "m")} for d in dropped]
    ticks = parse_rest_agg_trades(rows, "BTCUSDT", recv_ts=0.0)  # ...and backfills it
    assert [t.trade_id for t in ticks] == [101, 102, 103]
    assert server.rest_log == ["/fapi/v1/aggTrades?symbol=BTCUSDT&fromId=101&limit=3"]


async def test_rest_aggtrades_windows_and_limits(server: BinanceServer) -> None:
    for i in range(10):
        server.publish_agg_trade("ETHUSDT", "1.0", "1", trade_time_ms=1_000_000 + i * 1000)
    server.publish_agg_trade("ETHUSDT", "1.0", "1", trade_time_ms=1_000_000 + 2 * 3_600_000)
    async with httpx.AsyncClient(base_url=server.rest_url) as http:

        async def ids(**params: Any) -> list[int]:
            response = await http.get("/fapi/v1/aggTrades", params={"symbol": "ETHUSDT", **params})
            assert response.status_code == 200, response.text
            return [row["a"] for row in response.json()]

        assert await ids(limit=3) == [108, 109, 110]  # most recent
        assert await ids(fromId=105, limit=2) == [105, 106]
        assert await ids(fromId=200) == []
        assert await ids(startTime=1_002_000, endTime=1_004_000) == [102, 103, 104]
        assert await ids(startTime=1_008_000) == [108, 109]  # one hour from startTime
        assert await ids(endTime=1_001_000, limit=1) == [100]
        assert (await http.get("/fapi/v1/aggTrades", params={"symbol": "XRPUSDT"})).json() == []
        assert (await http.get("/fapi/v1/ping")).json() == {}
        assert abs((await http.get("/fapi/v1/time")).json()["serverTime"] - time.time() * 1e3) < 5e3


async def test_exchange_info_lists_the_listed_perpetuals(server: BinanceServer) -> None:
    """What a client that maps symbols at start (cryptofeed, in bench gateway) reads."""
    async with httpx.AsyncClient(base_url=server.rest_url) as http:
        assert (await http.get("/fapi/v1/exchangeInfo")).json()["symbols"] == []
        server.listed_symbols = ["BTCUSDT", "1000PEPEUSDT"]
        info = (await http.get("/fapi/v1/exchangeInfo")).json()
    assert [(s["symbol"], s["baseAsset"], s["quoteAsset"], s["contractType"], s["status"])
            for s in info["symbols"]] == [
        ("BTCUSDT", "BTC", "USDT", "PERPETUAL", "TRADING"),
        ("1000PEPEUSDT", "1000PEPE", "USDT", "PERPETUAL", "TRADING"),
    ]  # fmt: skip
    assert info["symbols"][0]["filters"][0]["filterType"] == "PRICE_FILTER"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, -1102),
        ({"symbol": "BTCUSDT", "fromId": "abc"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "1001"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "0"}, -1100),
        ({"symbol": "BTCUSDT", "startTime": "-5"}, -1100),
        ({"symbol": "BTCUSDT", "fromId": "1", "startTime": "1"}, -1128),
        ({"symbol": "BTCUSDT", "startTime": "0", "endTime": "3600001"}, -1127),
        ({"symbol": "BTCUSDT", "since": "1"}, -1104),
    ],
)
async def test_rest_bad_parameters_are_400(
    server: BinanceServer, params: dict[str, str], code: int
) -> None:
    async with httpx.AsyncClient(base_url=server.rest_url) as http:
        response = await http.get("/fapi/v1/aggTrades", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert server.counters.rest_errors == 1


async def test_explicit_agg_id_scripts_a_gap_and_history_is_kept(server: BinanceServer) -> None:
    first = server.publish_agg_trade("btcusdt", "1", "1", fills=3)
    jumped = server.publish_agg_trade("BTCUSDT", "1", "1", agg_id=110)
    after = server.publish_agg_trade("BTCUSDT", "1", "1")
    assert (first["a"], jumped["a"], after["a"]) == (100, 110, 111)
    assert first["l"] - first["f"] == 2
    assert jumped["f"] == first["l"] + 1  # raw trade ids keep counting
    assert first["T"] <= jumped["T"] <= after["T"]  # default times never go backwards
    assert [row["a"] for row in server.agg_trades("BTCUSDT")] == [100, 110, 111]


async def test_bad_input_frames_reach_subscribers_verbatim(server: BinanceServer) -> None:
    async with (
        connect(f"{server.ws_url}/market/stream?streams={BTC}") as sub,
        connect(f"{server.ws_url}/market/stream?streams={ETH}") as other,
    ):
        await server.wait_for_subscribers(ETH)
        bad = [
            '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"',  # malformed JSON
            '{"stream":"btcusdt@aggTrade","data":{"e":"mystery"}}',  # unknown event
            '{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"-1.0","q":"1","T":1,"E":1,"m":false}',
        ]
        for text in bad:
            assert server.publish_raw(BTC, text) == 1
        for text in bad:
            got = await asyncio.wait_for(sub.recv(), 2)
            assert got == text
            with pytest.raises(FrameError):
                parse_frame(got, 0.0)
        wrapped = {"e": "aggTrade", "s": "BTCUSDT", "a": 5, "p": "1", "q": "x"}
        server.publish_raw(BTC, wrapped)  # a mapping is wrapped like real data
        assert await recv(sub) == {"stream": BTC, "data": wrapped}
        # a frame for a symbol nobody subscribed to, sent to everyone
        stray = '{"stream":"dogeusdt@aggTrade","data":{}}'
        assert server.send_to_all(stray) == 2
        assert await asyncio.wait_for(other.recv(), 2) == stray
        assert await asyncio.wait_for(sub.recv(), 2) == stray
        await server.flush()
        assert [c.frames_sent for c in server.connections] == [5, 1]


# -- firehose and the CLI ------------------------------------------------------------------------


async def test_firehose_delivers_every_frame_in_order(server: BinanceServer) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    frames = build_agg_trade_frames(symbols, 3000, first_agg_id=7)
    streams = "/".join(s.lower() + "@aggTrade" for s in symbols)
    async with (
        connect(f"{server.ws_url}/market/stream?streams={streams}", max_queue=4) as fast,
        connect(f"{server.ws_url}/public/stream?streams={streams}") as public,
    ):
        await server.wait_for_connections(2)

        async def read_all() -> list[Tick]:
            ticks = []
            for _ in frames:
                tick = parse_frame(await asyncio.wait_for(fast.recv(), 5), 0.0)
                assert isinstance(tick, Tick)
                ticks.append(tick)
            return ticks

        reader = asyncio.create_task(read_all())
        result = await server.firehose(frames)  # the public-route connection is not selected
        ticks = await reader
        await assert_silent(public)
    assert (result.frames, result.connections) == (3000, 1)
    assert result.rate > 0
    for symbol in symbols:
        ids = [t.trade_id for t in ticks if t.symbol == symbol]
        assert ids == list(range(7, 7 + 1500))


def test_build_frames_raw_mode_parses() -> None:
    frames = build_agg_trade_frames(["SOLUSDT"], 5, combined=False, prices={"SOLUSDT": 0.5})
    ticks = [parse_frame(f, 0.0) for f in frames]
    assert all(isinstance(t, Tick) and t.symbol == "SOLUSDT" for t in ticks)
    assert b'"stream"' not in frames[0]
    assert len(orjson.loads(frames[0])["p"].split(".")[1]) == 6  # small prices keep precision


@pytest.mark.parametrize("flags", [[], ["--raw-reader"]])
def test_cli_firehose_benchmark(capsys: pytest.CaptureFixture[str], flags: list[str]) -> None:
    assert main(["--bench-firehose", "2000", *flags]) == 0
    assert "frames/s" in capsys.readouterr().out


async def test_cli_serves_a_random_walk_feed() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spreadbus.testing.binance_server",
        "--port",
        "0",
        "--rate",
        "200",
        "--duration",
        "5",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        ws_url = first.split(" on ", 1)[1].split()[0]
        async with connect(combined_url(ws_url, "market", [BTC, ETH])) as ws:
            tick = parse_frame(await asyncio.wait_for(ws.recv(), 5), 0.0)
        assert isinstance(tick, Tick)
        assert tick.symbol in ("BTCUSDT", "ETHUSDT")
        async with httpx.AsyncClient(base_url=ws_url.replace("ws://", "http://")) as http:
            rows = (await http.get("/fapi/v1/aggTrades", params={"symbol": tick.symbol})).json()
        assert rows
    finally:
        process.terminate()  # SIGTERM stops the demo cleanly
        assert await asyncio.wait_for(process.wait(), 10) == 0
