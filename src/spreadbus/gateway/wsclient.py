"""The WebSocket client under the Binance feed, behind one small interface, two libraries.

:func:`open_socket` connects with ``picows`` (a Cython client: measured here at 2.3 us of CPU
per aggTrade frame against 7.2 us for ``websockets``, same frames, same local server) or, when
asked (``client="websockets"``), with ``websockets``. Both
answer server pings with pongs and deliver each data frame, text or bytes, to a callback.
:mod:`spreadbus.gateway.ws` does the rest (backoff, silence, rollover, control messages) the
same way over either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Literal, Protocol

import picows
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

Client = Literal["picows", "websockets"]
FrameHandler = Callable[[bytes | str], None]
YIELD_EVERY = 16  # websockets: frames read before giving the event loop (the flusher) a turn
MAX_FRAME_BYTES = 2**22

CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, InvalidHandshake, InvalidURI, WebSocketException, picows.WSError,
)  # fmt: skip


class FrameSocket(Protocol):
    @property
    def close_code(self) -> int | None: ...

    async def read(self, on_frame: FrameHandler) -> None:
        """Hand every data frame to ``on_frame`` until the connection closes."""

    async def send(self, text: str) -> None: ...

    async def close(self) -> None: ...


class _WebsocketsSocket:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    @property
    def close_code(self) -> int | None:
        return self._connection.close_code

    async def read(self, on_frame: FrameHandler) -> None:
        count = 0
        async for frame in self._connection:
            on_frame(frame)
            count += 1
            if count % YIELD_EVERY == 0:
                # While frames are queued, recv() never suspends: without this the flusher
                # would not run until the burst is over.
                await asyncio.sleep(0)

    async def send(self, text: str) -> None:
        await self._connection.send(text)

    async def close(self) -> None:
        await self._connection.close()


class _PicowsSocket:
    """picows calls back per frame from the protocol: frames go straight to the handler (those
    before :meth:`read` starts are kept for it), and the event loop gets its turn after each
    read from the socket, whatever the burst."""

    def __init__(self) -> None:
        self.transport: Any = None
        self._handler: FrameHandler | None = None
        self._early: list[bytes | str] = []
        self._closed = asyncio.get_running_loop().create_future()
        self._close_code: int | None = None

    @property
    def close_code(self) -> int | None:
        return self._close_code

    def on_frame(self, transport: Any, frame: Any) -> None:
        if self._close_code is not None:
            return  # closing: what follows in the same read is not this connection's any more
        kind = frame.msg_type
        if kind == picows.WSMsgType.TEXT or kind == picows.WSMsgType.BINARY:  # noqa: PLR1714
            # what websockets refuses below the parser, refused the same way: the connection
            # closes (1009 too big, 1007 not UTF-8) and the feed reconnects and back-fills
            if frame.payload_size > MAX_FRAME_BYTES:
                self._refuse(transport, picows.WSCloseCode.MESSAGE_TOO_BIG, 1009)
                return
            if kind == picows.WSMsgType.TEXT:
                try:
                    data: bytes | str = frame.get_payload_as_utf8_text()
                except UnicodeDecodeError:
                    self._refuse(transport, picows.WSCloseCode.INVALID_TEXT, 1007)
                    return
            else:
                data = frame.get_payload_as_bytes()
            if self._handler is None:
                self._early.append(data)
            else:
                self._handler(data)
        elif kind == picows.WSMsgType.CLOSE:
            self._close_code = int(frame.get_close_code())
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _refuse(self, transport: Any, code: Any, number: int) -> None:
        self._close_code = number
        transport.send_close(code)
        transport.disconnect()

    def on_disconnected(self) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    async def read(self, on_frame: FrameHandler) -> None:
        early, self._early = self._early, []
        for data in early:
            on_frame(data)
        self._handler = on_frame
        await asyncio.shield(self._closed)

    async def send(self, text: str) -> None:
        self.transport.send(picows.WSMsgType.TEXT, text.encode())

    async def close(self) -> None:
        if self.transport is not None and not self._closed.done():
            with contextlib.suppress(Exception):
                self.transport.send_close(picows.WSCloseCode.OK)
            self.transport.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._closed), 2)


async def _open_picows(url: str, open_timeout: float) -> FrameSocket:
    socket = _PicowsSocket()

    class Listener(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            socket.on_frame(transport, frame)

        def on_ws_disconnected(self, transport: Any) -> None:
            socket.on_disconnected()

    transport, _ = await asyncio.wait_for(
        picows.ws_connect(Listener, url, websocket_handshake_timeout=open_timeout),
        open_timeout,
    )  # fmt: skip
    socket.transport = transport
    return socket


async def open_socket(url: str, open_timeout: float, client: Client = "picows") -> FrameSocket:
    """A connected socket (pings answered by the library); raises one of
    :data:`CONNECT_ERRORS` if it cannot connect."""
    if client == "picows":
        return await _open_picows(url, open_timeout)
    connection = await connect(
        url,
        open_timeout=open_timeout,
        ping_interval=None,  # Binance pings us; websockets answers each ping with a pong
        close_timeout=2,
        max_size=MAX_FRAME_BYTES,
        max_queue=4096,
    )
    return _WebsocketsSocket(connection)
