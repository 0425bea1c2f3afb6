"""Both WebSocket clients behind gateway/wsclient.py, against the local Binance server:
frames in order, a control message and its reply, server pings answered, closing."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from spreadbus.gateway.binance import stream_name
from spreadbus.gateway.wsclient import CONNECT_ERRORS, Client, open_socket
from spreadbus.testing.binance_server import BinanceServer


@pytest.mark.parametrize("client", ["picows", "websockets"])
async def test_a_client_reads_frames_sends_control_and_closes(client: Client) -> None:
    async with BinanceServer(ping_interval=0.2, pong_timeout=1.0) as server:
        url = f"{server.ws_url}/market/stream?streams={stream_name('BTCUSDT')}"
        socket = await open_socket(url, 5.0, client)
        got: list[bytes | str] = []
        reader = asyncio.create_task(socket.read(got.append))
        await server.wait_for_subscribers(stream_name("BTCUSDT"))
        for i in range(300):
            server.publish_agg_trade("BTCUSDT", f"{100 + i}.5", "0.01")
        await server.wait_until(lambda: len(got) >= 300, 10, "300 frames")
        prices = [orjson.loads(frame)["data"]["p"] for frame in got]
        assert prices == [f"{100 + i}.5" for i in range(300)]
        await socket.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}).decode())
        await server.wait_until(
            lambda: any(b'"id":7' in (f if isinstance(f, bytes) else f.encode()) for f in got),
            10,
            "the reply to the control message",
        )
        await asyncio.sleep(1.5)  # several server pings, each with a 1 s pong deadline
        assert not reader.done(), "the server closed the connection: a ping went unanswered"
        await socket.close()
        await asyncio.wait_for(reader, 5)


@pytest.mark.parametrize("client", ["picows", "websockets"])
async def test_a_refused_connection_raises_a_connect_error(client: Client) -> None:
    async with BinanceServer() as server:
        url = f"{server.ws_url}/nowhere"  # the server answers 404
        with pytest.raises(CONNECT_ERRORS):
            await open_socket(url, 5.0, client)
