"""A local server that speaks the Binance USDT-M futures market-stream protocol.

It follows ``shared/BINANCE.md`` so that the gateway's WebSocket client and the benchmarks can be
tested against something that behaves like ``fstream.binance.com`` + ``fapi.binance.com``, on one
port:

- WebSocket routes: ``/market/stream?streams=a/b`` and ``/market/ws/a/b`` (combined / raw),
  ``/public/...`` likewise, and the legacy unrouted ``/stream?...`` and ``/ws/...``. Trade streams
  are only answered on the ``market`` route (``@trade`` on ``trade_route``); elsewhere the
  handshake completes and they stay silent, as Binance does since 2026-04-23. Other paths: 404.
- Control messages (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY) with
  Binance's replies and error codes 0-3, the 10 incoming messages/s limit (ping and pong frames
  count, as on Binance), the per-connection stream cap, server pings with a pong deadline and the
  maximum connection age.
- REST: ``GET /fapi/v1/aggTrades`` served from the per-symbol history of published trades (so a
  test can open a trade-id gap with :meth:`BinanceServer.silence` and let the client backfill),
  ``/fapi/v1/ping``, ``/fapi/v1/time`` and ``/fapi/v1/exchangeInfo`` (the perpetuals in
  :attr:`BinanceServer.listed_symbols`, enough for a client that maps symbols at start).
- Scripting for tests (publish, malformed frames, disconnects, silence) and a backpressured
  firehose for benchmarks.

All methods must be called from the event loop the server runs on.

Demo: ``python -m spreadbus.testing.binance_server --port 9443 --symbols BTCUSDT,ETHUSDT``.

Firehose throughput (2-vCPU container, Python 3.11, websockets 17, ~190-byte combined aggTrade
frames, reader and server in one process):
``python -m spreadbus.testing.binance_server --bench-firehose 200000`` -> 55-65 k frames/s into a
``websockets`` client that reads every frame (the client is the bottleneck), and with
``--raw-reader`` (a socket that discards bytes) 230-360 k frames/s: what the server alone pushes.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import http
import itertools
import math
import random
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State

from spreadbus.gateway.binance import mark_price_stream, stream_name

Route = Literal["market", "public", "legacy"]
TradeRoute = Literal["market", "public"]

METHODS: Final = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
ABRUPT: Final = 1006  # "closed abnormally": no close frame, the TCP connection is just cut
REST_MAX_LIMIT: Final = 1000
REST_DEFAULT_LIMIT: Final = 500
REST_MAX_WINDOW_MS: Final = 3_600_000  # Binance: startTime..endTime under one hour
_AGG_TRADE_PARAMS: Final = frozenset({"symbol", "fromId", "startTime", "endTime", "limit"})
_UINT_RE: Final = re.compile(r"^[0-9]{1,19}$")
_MAX_REQUEST_ID: Final = 2**64 - 1


# ----------------------------------------------------------------------------------------------
# Routes


def stream_route(name: str, trade_route: TradeRoute = "market") -> TradeRoute | None:
    """The route that carries stream ``name``, after BINANCE.md's route table.

    ``None`` means "not in the table": such names (e.g. ``btcusdt@whatever``) are delivered on
    every route, so a test can script arbitrary streams with :meth:`BinanceServer.publish_raw`.
    """
    kind = name.partition("@")[2]
    if kind == "trade":
        return trade_route
    if kind in ("aggTrade", "miniTicker", "ticker") or kind.startswith(
        ("kline_", "markPrice", "forceOrder")
    ):
        return "market"
    if kind == "bookTicker" or kind.startswith("depth"):
        return "public"
    return None


def route_serves(route: Route, name: str, trade_route: TradeRoute = "market") -> bool:
    """Whether a connection on ``route`` receives data for stream ``name``.

    The legacy unrouted addresses carry only the public streams (depth, bookTicker).
    """
    home = stream_route(name, trade_route)
    if home is None:
        return True
    if home == "public":
        return route in ("public", "legacy")
    return route == home


def _parse_ws_path(path: str, query: str) -> tuple[Route, bool, list[str]] | None:
    """``/market/stream`` + ``streams=a/b`` -> ``("market", True, ["a", "b"])``; None if unknown."""
    segments = path.split("/")[1:]
    route: Route = "legacy"
    if segments and segments[0] in ("market", "public"):
        route = "market" if segments[0] == "market" else "public"
        segments = segments[1:]
    if segments and segments[-1] == "" and len(segments) > 1:
        segments = segments[:-1]  # tolerate a trailing slash
    if segments == ["stream"]:
        streams: list[str] = []
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "streams":
                streams.extend(s for s in value.split("/") if s)
        return route, True, list(dict.fromkeys(streams))
    if segments and segments[0] == "ws":
        streams = [unquote(s) for s in segments[1:] if s]
        return route, False, list(dict.fromkeys(streams))
    return None


# ----------------------------------------------------------------------------------------------
# Connection bookkeeping


@dataclass(eq=False)
class ConnectionInfo:
    """What the server knows about one WebSocket connection (live or closed)."""

    id: int
    path: str  # as requested, with the query string
    route: Route
    combined: bool  # wrap payloads as {"stream":..,"data":..}; SET_PROPERTY can change it
    opened_at: float  # wall clock, epoch seconds
    remote: str
    received: list[str] = field(default_factory=list)  # every text/binary message, as received
    pings_sent: int = 0
    pings_answered: int = 0
    pongs_received: int = 0  # solicited and unsolicited
    unsolicited_pongs: int = 0  # pongs that answered no ping (allowed; they count as messages)
    frames_sent: int = 0  # data frames and control replies written to the socket
    closed_at: float | None = None
    close_code: int | None = None  # as recorded by the WebSocket layer (1006: no close frame)
    # Why the server ended it: rate_limit | pong_timeout | max_age | disconnect_all |
    # server_stop, or "client" when the client went away first.
    close_reason: str | None = None
    _subscriptions: dict[str, None] = field(default_factory=dict, repr=False)

    @property
    def subscriptions(self) -> list[str]:
        """Subscribed stream names, in subscription order (what LIST_SUBSCRIPTIONS returns)."""
        return list(self._subscriptions)

    @property
    def control_messages(self) -> list[str]:
        """Alias of :attr:`received`: every message the client sent."""
        return self.received


@dataclass
class ServerCounters:
    """Totals since the server started; tests assert on them."""

    connections_opened: int = 0
    connections_closed: int = 0
    handshakes_rejected: int = 0  # 404 unknown path, 400 too many streams, scripted rejections
    control_messages: int = 0
    control_errors: int = 0
    rate_limit_drops: int = 0
    pong_timeouts: int = 0
    max_age_closes: int = 0
    forced_disconnects: int = 0
    pings_sent: int = 0
    pings_answered: int = 0
    frames_queued: int = 0
    frames_sent: int = 0
    frames_dropped_silenced: int = 0  # deliveries skipped because of silence()
    frames_withheld_by_route: int = 0  # subscribed, but the route does not carry the stream
    rest_requests: int = 0
    rest_errors: int = 0


class _Connection(ServerConnection):
    """A ServerConnection that carries its parsed route from the handshake to the handler and
    reports ping/pong frames: Binance counts them toward the 10 messages/s limit, and the
    public websockets API does not surface them."""

    route: tuple[Route, bool, list[str]] | None = None
    # Called with (opcode, unsolicited): unsolicited is True for a pong that answers no ping.
    on_control_frame: Callable[[Opcode, bool], None] | None = None

    def process_event(self, event: Event) -> None:
        report = (
            self.on_control_frame is not None
            and isinstance(event, Frame)
            and event.opcode in (Opcode.PING, Opcode.PONG)
        )
        # Decide before super() acknowledges the ping and forgets its payload.
        unsolicited = (
            report
            and isinstance(event, Frame)
            and event.opcode is Opcode.PONG
            and bytes(event.data) not in self.pending_pings
        )
        super().process_event(event)
        if report and self.on_control_frame is not None and isinstance(event, Frame):
            self.on_control_frame(event.opcode, unsolicited)


class _Session:
    """Server-side state of one live connection: an ordered outbox drained by one writer task,
    so published data and control replies reach the client in the order they were produced."""

    def __init__(self, ws: _Connection, info: ConnectionInfo) -> None:
        self.ws = ws
        self.info = info
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.pending = 0  # frames queued but not yet written (for BinanceServer.flush)
        self.incoming: deque[float] = deque()  # arrival times inside the rate-limit window
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def open(self) -> bool:
        return self.ws.state is State.OPEN

    def enqueue(self, frame: bytes) -> None:
        self.pending += 1
        self.outbox.put_nowait(frame)

    def note_incoming(self, now: float, limit: int | None) -> bool:
        """Record one incoming message; False when it exceeds ``limit`` per second."""
        if limit is None:
            return True
        window = self.incoming
        window.append(now)
        while window and now - window[0] >= 1.0:
            window.popleft()
        return len(window) <= limit

    async def close(self, why: str, code: int, reason: str) -> None:
        if self.info.close_reason is None:
            self.info.close_reason = why
        if code == ABRUPT:
            self.ws.transport.abort()  # 1006 is never sent on the wire: no close frame at all
            await self.ws.wait_closed()
        else:
            await self.ws.close(code, reason)


@dataclass(frozen=True)
class FirehoseResult:
    """What :meth:`BinanceServer.firehose` delivered."""

    frames: int  # frames written, summed over connections
    connections: int
    seconds: float

    @property
    def rate(self) -> float:
        """Frames per second, summed over connections."""
        return self.frames / self.seconds if self.seconds > 0 else math.inf


# ----------------------------------------------------------------------------------------------
# The server


def _json_response(status: int, body: Any) -> Response:
    data = orjson.dumps(body)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Connection", "close"),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, data)


def _rest_error(code: int, msg: str) -> Response:
    return _json_response(400, {"code": code, "msg": msg})


def _error_reply(code: int, msg: str, request_id: Any, *, with_id: bool = True) -> bytes:
    reply: dict[str, Any] = {"code": code, "msg": msg}
    if with_id:  # Binance omits the id only when it could not even parse the JSON
        reply["id"] = request_id
    return orjson.dumps(reply)


class _ControlError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class BinanceServer:
    """Binance USDT-M futures market streams + aggTrades REST on one local port.

    ``async with BinanceServer(port=0, ping_interval=0.2) as server:`` then connect to
    ``server.ws_url + "/market/stream?streams=btcusdt@aggTrade"`` and call
    ``server.publish_agg_trade("BTCUSDT", "98000.10", "0.010")``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        trade_route: TradeRoute = "market",
        ping_interval: float | None = 180.0,
        pong_timeout: float = 600.0,
        max_age: float | None = 24 * 3600.0,
        max_streams: int = 1024,
        max_messages_per_second: int | None = 10,
        agg_id_base: int = 1_000_000,
        trade_id_base: int = 5_000_000,
        history_limit: int = 100_000,
        compression: Literal["deflate"] | None = None,
        close_timeout: float = 2.0,
    ) -> None:
        """
        Args:
            trade_route: route that carries ``<s>@trade`` (*unconfirmed* on Binance).
            ping_interval: seconds between server pings (Binance: 180); None: no pings.
            pong_timeout: disconnect when a ping is unanswered this long (Binance: 600).
            max_age: close a connection after this many seconds (Binance: 24 h); None: never.
            max_messages_per_second: incoming-message limit per connection; None: no limit.
            agg_id_base / trade_id_base: first aggregate / raw trade id of every symbol.
            history_limit: trades kept per symbol for REST (oldest dropped first).
            compression: permessage-deflate is *unconfirmed* on Binance, so off by default.
            close_timeout: how long a clean close waits for the client's close frame.
        """
        if trade_route not in ("market", "public"):
            raise ValueError(f"trade_route must be 'market' or 'public', not {trade_route!r}")
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError("ping_interval must be positive (or None)")
        if pong_timeout <= 0 or (max_age is not None and max_age <= 0) or max_streams < 1:
            raise ValueError("pong_timeout, max_age and max_streams must be positive")
        self.host = host
        self._requested_port = port
        self.trade_route: TradeRoute = trade_route
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_age = max_age
        self.max_streams = max_streams
        self.max_messages_per_second = max_messages_per_second
        self.agg_id_base = agg_id_base
        self.trade_id_base = trade_id_base
        self.history_limit = history_limit
        self.compression = compression
        self.close_timeout = close_timeout
        # Scripted handshake refusal (e.g. 503, or 429/418 like a rate-limited/banned IP).
        self.reject_handshakes: int | None = None

        self.counters = ServerCounters()
        self.closed_connections: list[ConnectionInfo] = []
        self.rest_log: list[str] = []  # every REST request: path?query
        self.listed_symbols: list[str] = []  # what /fapi/v1/exchangeInfo lists (USDT perpetuals)
        self._sessions: dict[int, _Session] = {}
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._port: int | None = None
        self._stopping = False
        self._silent_until = 0.0  # loop time
        self._background: set[asyncio.Task[None]] = set()
        # Per-symbol history and id counters (symbols upper case).
        self._agg_rows: dict[str, list[dict[str, Any]]] = {}
        self._agg_ids: dict[str, list[int]] = {}
        self._trade_rows: dict[str, list[dict[str, Any]]] = {}
        self._next_agg_id: dict[str, int] = {}
        self._next_trade_id: dict[str, int] = {}
        self._last_time_ms: dict[str, int] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        self._stopping = False
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            create_connection=_Connection,
            compression=self.compression,
            ping_interval=None,  # our own keepalive: Binance's timings, and it counts answers
            close_timeout=self.close_timeout,
        )
        # A later start() after stop() binds the same port, so a test can take the "exchange"
        # down and bring it back while the client keeps the same URL. History, counters and id
        # counters survive the restart, as they would on Binance.
        self._port = self._server.sockets[0].getsockname()[1]
        self._requested_port = self._port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        for session in self._sessions.values():
            if session.info.close_reason is None:
                session.info.close_reason = "server_stop"
        server.close()  # closes live connections with 1001 going away
        await server.wait_closed()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (kept after stop(), for a restart on the same address)."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``: the host a client appends ``/market/stream?...`` to."""
        return f"ws://{self._authority}"

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:PORT``: the host a client appends ``/fapi/v1/aggTrades`` to."""
        return f"http://{self._authority}"

    # -- inspection -----------------------------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionInfo]:
        """Live (open) connections, oldest first."""
        return [s.info for s in self._sessions.values() if s.open]

    def agg_trades(self, symbol: str) -> list[dict[str, Any]]:
        """Published aggTrades of ``symbol`` in REST row form ``{"a","p","q","f","l","T","m"}``."""
        return list(self._agg_rows.get(symbol.upper(), ()))

    def trades(self, symbol: str) -> list[dict[str, Any]]:
        """Published raw trades of ``symbol`` (the ``@trade`` payloads)."""
        return list(self._trade_rows.get(symbol.upper(), ()))

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Poll ``predicate`` until true; TimeoutError naming ``what`` otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.005)

    async def wait_for_connections(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_until(
            lambda: len(self.connections) >= count, timeout, f"{count} live connection(s)"
        )

    async def wait_for_subscribers(self, stream: str, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` live connections subscribe to ``stream`` (publish after this)."""
        await self.wait_until(
            lambda: sum(stream in c._subscriptions for c in self.connections) >= count,
            timeout,
            f"{count} subscriber(s) of {stream}",
        )

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued to live connections has been written to their sockets."""
        await self.wait_until(
            lambda: all(s.pending == 0 for s in self._sessions.values() if s.open),
            timeout,
            "outboxes to drain",
        )

    # -- scripting ------------------------------------------------------------------------------

    def silence(self, seconds: float = math.inf) -> None:
        """Deliver no data for ``seconds`` (connections, pings and control replies go on).

        Trades published meanwhile are dropped for the live streams but kept in the history,
        so REST backfill serves them: that is how a test opens an aggregate-id gap.
        """
        self._silent_until = asyncio.get_running_loop().time() + seconds

    def resume(self) -> None:
        """End a :meth:`silence` early."""
        self._silent_until = 0.0

    @property
    def silenced(self) -> bool:
        return asyncio.get_running_loop().time() < self._silent_until

    def _event_times(
        self, symbol: str, trade_time_ms: int | None, event_time_ms: int | None
    ) -> tuple[int, int]:
        # Default times never go backwards per symbol: the bus keys ticks on (T, id).
        if trade_time_ms is None:
            trade_time_ms = max(time.time_ns() // 1_000_000, self._last_time_ms.get(symbol, 0))
        self._last_time_ms[symbol] = max(trade_time_ms, self._last_time_ms.get(symbol, 0))
        if event_time_ms is None:
            event_time_ms = max(trade_time_ms, time.time_ns() // 1_000_000)
        return trade_time_ms, event_time_ms

    def _take_trade_ids(self, symbol: str, count: int) -> int:
        first = self._next_trade_id.get(symbol, self.trade_id_base)
        self._next_trade_id[symbol] = first + count
        return first

    def publish_agg_trade(
        self,
        symbol: str,
        price: str,
        qty: str,
        *,
        trade_time_ms: int | None = None,
        event_time_ms: int | None = None,
        buyer_maker: bool = False,
        agg_id: int | None = None,
        fills: int = 1,
    ) -> dict[str, Any]:
        """Record an aggTrade in the history and send it to ``<symbol>@aggTrade`` subscribers.

        ``agg_id`` defaults to the next id of the symbol (starting at ``agg_id_base``); passing
        one moves the counter past it, so ``agg_id=last + 5`` scripts a gap. ``fills`` is the
        number of raw trades aggregated (``f``..``l``). Returns the payload.
        """
        symbol = symbol.upper()
        if agg_id is None:
            agg_id = self._next_agg_id.get(symbol, self.agg_id_base)
        self._next_agg_id[symbol] = max(agg_id + 1, self._next_agg_id.get(symbol, 0))
        first = self._take_trade_ids(symbol, max(fills, 1))
        t_ms, e_ms = self._event_times(symbol, trade_time_ms, event_time_ms)
        payload: dict[str, Any] = {
            "e": "aggTrade",
            "E": e_ms,
            "s": symbol,
            "a": agg_id,
            "p": price,
            "q": qty,
            "f": first,
            "l": first + max(fills, 1) - 1,
            "T": t_ms,
            "m": buyer_maker,
        }
        row = {k: payload[k] for k in ("a", "p", "q", "f", "l", "T", "m")}
        rows = self._agg_rows.setdefault(symbol, [])
        ids = self._agg_ids.setdefault(symbol, [])
        at = bisect.bisect_right(ids, agg_id)  # keeps the history sorted for fromId lookups
        ids.insert(at, agg_id)
        rows.insert(at, row)
        self._trim(rows, ids)
        self._deliver(stream_name(symbol, "aggTrade"), orjson.dumps(payload))
        return payload

    def publish_trade(
        self,
        symbol: str,
        price: str,
        qty: str,
        *,
        kind: str = "MARKET",
        trade_time_ms: int | None = None,
        event_time_ms: int | None = None,
        buyer_maker: bool = False,
        trade_id: int | None = None,
    ) -> dict[str, Any]:
        """Record a raw trade and send it to ``<symbol>@trade`` subscribers (on ``trade_route``).

        ``kind`` is the ``X`` field: MARKET, INSURANCE_FUND, ADL or NA. Returns the payload.
        """
        symbol = symbol.upper()
        if trade_id is None:
            trade_id = self._take_trade_ids(symbol, 1)
        else:
            self._next_trade_id[symbol] = max(trade_id + 1, self._next_trade_id.get(symbol, 0))
        t_ms, e_ms = self._event_times(symbol, trade_time_ms, event_time_ms)
        payload: dict[str, Any] = {
            "e": "trade",
            "E": e_ms,
            "T": t_ms,
            "s": symbol,
            "t": trade_id,
            "p": price,
            "q": qty,
            "X": kind,
            "m": buyer_maker,
        }
        rows = self._trade_rows.setdefault(symbol, [])
        rows.append(payload)
        self._trim(rows)
        self._deliver(stream_name(symbol, "trade"), orjson.dumps(payload))
        return payload

    def publish_mark_price(
        self,
        symbol: str,
        mark_price: str,
        index_price: str,
        funding_rate: str,
        next_funding_ms: int,
        *,
        event_time_ms: int | None = None,
        settle_price: str | None = None,
    ) -> dict[str, Any]:
        """Send a ``markPriceUpdate`` to ``<symbol>@markPrice@1s`` and ``<symbol>@markPrice``
        subscribers (``market`` route); returns the payload. Values are given as the exchange
        sends them (decimal text), so a test states the exact numbers it then checks."""
        symbol = symbol.upper()
        payload: dict[str, Any] = {
            "e": "markPriceUpdate",
            "E": time.time_ns() // 1_000_000 if event_time_ms is None else event_time_ms,
            "s": symbol,
            "p": mark_price,
            "i": index_price,
            "P": index_price if settle_price is None else settle_price,
            "r": funding_rate,
            "T": next_funding_ms,
        }
        frame = orjson.dumps(payload)
        for stream in (mark_price_stream(symbol), f"{symbol.lower()}@markPrice"):
            self._deliver(stream, frame)
        return payload

    def publish_raw(self, stream: str, payload: Mapping[str, Any] | str | bytes) -> int:
        """Send anything to the subscribers of ``stream``; returns how many connections got it.

        A mapping is encoded and wrapped like real data (``{"stream":..,"data":..}`` in combined
        mode). Text or bytes go out verbatim in a text frame, whatever the mode: malformed JSON,
        unknown events, missing fields, bad numbers, even invalid UTF-8. Not kept in history.
        """
        if isinstance(payload, Mapping):
            return self._deliver(stream, orjson.dumps(dict(payload)))
        frame = payload.encode() if isinstance(payload, str) else bytes(payload)
        return self._deliver(stream, b"", verbatim=frame)

    def send_to_all(self, text: str | bytes) -> int:
        """Send ``text`` verbatim to every live connection, subscribed or not (e.g. frames for
        symbols nobody asked for). Returns how many connections got it."""
        frame = text.encode() if isinstance(text, str) else bytes(text)
        live = [s for s in self._sessions.values() if s.open]
        if self.silenced:
            self.counters.frames_dropped_silenced += len(live)
            return 0
        for session in live:
            session.enqueue(frame)
        self.counters.frames_queued += len(live)
        return len(live)

    async def disconnect_all(self, code: int = ABRUPT, reason: str = "") -> int:
        """End every live connection: ``code=1006`` cuts TCP with no close frame (what a network
        failure looks like), any other code is a clean close with that code. Returns how many."""
        live = [s for s in self._sessions.values() if s.open]
        self.counters.forced_disconnects += len(live)
        await asyncio.gather(*(s.close("disconnect_all", code, reason) for s in live))
        return len(live)

    def _trim(self, rows: list[dict[str, Any]], ids: list[int] | None = None) -> None:
        # Trim in chunks of 10 % so a busy symbol does not pay a list shift per trade.
        if len(rows) > self.history_limit + self.history_limit // 10:
            excess = len(rows) - self.history_limit
            del rows[:excess]
            if ids is not None:
                del ids[:excess]

    def _deliver(self, stream: str, payload: bytes, *, verbatim: bytes | None = None) -> int:
        targets = [s for s in self._sessions.values() if s.open and stream in s.info._subscriptions]
        if not targets:
            return 0
        if self.silenced:
            self.counters.frames_dropped_silenced += len(targets)
            return 0
        combined: bytes | None = None
        sent = 0
        for session in targets:
            info = session.info
            if not route_serves(info.route, stream, self.trade_route):
                self.counters.frames_withheld_by_route += 1
                continue
            if verbatim is not None:
                frame = verbatim
            elif info.combined:
                if combined is None:
                    combined = b'{"stream":' + orjson.dumps(stream) + b',"data":' + payload + b"}"
                frame = combined
            else:
                frame = payload
            session.enqueue(frame)
            sent += 1
        self.counters.frames_queued += sent
        return sent

    # -- firehose -------------------------------------------------------------------------------

    async def firehose(
        self,
        frames: Sequence[bytes],
        connection_filter: Callable[[ConnectionInfo], bool] | None = None,
        *,
        chunk: int = 256,
    ) -> FirehoseResult:
        """Write pre-encoded ``frames`` to every selected connection as fast as it reads.

        Each connection gets all frames, in order, concurrently with the others. Frames go
        ``chunk`` at a time into the connection's protocol and then we await the socket's drain,
        so a slow reader slows its own firehose (TCP backpressure) instead of filling memory.
        By default the selected connections are those subscribed to an aggTrade stream their
        route carries. Bypasses history and the outbox (frames may interleave with publish_*),
        and a connection stops receiving while the server is silenced.
        """
        if connection_filter is None:
            connection_filter = self._receives_agg_trades
        targets = [s for s in self._sessions.values() if s.open and connection_filter(s.info)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        counts = await asyncio.gather(*(self._pump(s, frames, chunk) for s in targets))
        seconds = loop.time() - started
        return FirehoseResult(frames=sum(counts), connections=len(targets), seconds=seconds)

    def _receives_agg_trades(self, info: ConnectionInfo) -> bool:
        return any(
            name.endswith("@aggTrade") and route_serves(info.route, name, self.trade_route)
            for name in info._subscriptions
        )

    async def _pump(self, session: _Session, frames: Sequence[bytes], chunk: int) -> int:
        ws = session.ws
        sent = 0
        try:
            for start in range(0, len(frames), chunk):
                if self.silenced:
                    self.counters.frames_dropped_silenced += len(frames) - start
                    break
                batch = frames[start : start + chunk]
                # One send_context per chunk instead of per frame: ws.send() pays a context
                # manager, a state check and a drain for every message, which would dominate.
                async with ws.send_context():
                    for frame in batch:
                        ws.protocol.send_text(frame)
                sent += len(batch)
        except ConnectionClosed:
            pass
        session.info.frames_sent += sent
        self.counters.frames_sent += sent
        return sent

    # -- handshake and REST ---------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/fapi/"):
            return self._rest(parts.path, parts.query)
        parsed = _parse_ws_path(parts.path, parts.query)
        if parsed is None:
            self.counters.handshakes_rejected += 1
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.reject_handshakes is not None:
            self.counters.handshakes_rejected += 1
            status = http.HTTPStatus(self.reject_handshakes)
            return connection.respond(status, f"{status.phrase}\n")
        if len(parsed[2]) > self.max_streams:
            self.counters.handshakes_rejected += 1
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST, f"too many streams (limit {self.max_streams})\n"
            )
        if isinstance(connection, _Connection):
            connection.route = parsed
        return None

    def _rest(self, path: str, query: str) -> Response:
        self.counters.rest_requests += 1
        self.rest_log.append(f"{path}?{query}" if query else path)
        if path == "/fapi/v1/ping":
            return _json_response(200, {})
        if path == "/fapi/v1/time":
            return _json_response(200, {"serverTime": time.time_ns() // 1_000_000})
        if path == "/fapi/v1/exchangeInfo":
            return _json_response(200, self._exchange_info())
        if path == "/fapi/v1/aggTrades":
            response = self._rest_agg_trades(query)
        else:
            response = _json_response(
                404, {"code": -5000, "msg": f"Path {path}, Method GET is invalid"}
            )
        if response.status_code != 200:
            self.counters.rest_errors += 1
        return response

    def _exchange_info(self) -> dict[str, Any]:
        """``GET /fapi/v1/exchangeInfo``: the listed USDT perpetuals, trading, with the fields a
        client reads to map symbols (filters[0] is the price filter, as on Binance)."""
        return {
            "timezone": "UTC",
            "serverTime": time.time_ns() // 1_000_000,
            "symbols": [
                {"symbol": symbol, "pair": symbol, "contractType": "PERPETUAL",
                 "status": "TRADING", "baseAsset": symbol.removesuffix("USDT"),
                 "quoteAsset": "USDT", "marginAsset": "USDT",
                 "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}]}
                for symbol in self.listed_symbols
            ],
        }  # fmt: skip

    def _rest_agg_trades(self, query: str) -> Response:
        """``GET /fapi/v1/aggTrades?symbol=&fromId=|startTime=&endTime=&limit=`` from history.

        fromId: ids >= fromId, ascending. startTime and/or endTime: a window of at most one hour
        (one hour from the given end when only one is sent), earliest first. Neither: the most
        recent trades. Always at most ``limit`` rows (default 500, max 1000).
        """
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(key, value)
        unknown = sorted(set(params) - _AGG_TRADE_PARAMS)
        if unknown:
            return _rest_error(
                -1104,
                f"Not all sent parameters were read; read '{len(params) - len(unknown)}' "
                f"parameter(s) but was sent '{len(params)}'.",
            )
        symbol = params.get("symbol", "").upper()
        if not symbol:
            return _rest_error(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        numbers: dict[str, int] = {}
        for key in ("fromId", "startTime", "endTime", "limit"):
            if key in params:
                if not _UINT_RE.match(params[key]):
                    return _rest_error(
                        -1100,
                        f"Illegal characters found in parameter '{key}'; "
                        "legal range is '^[0-9]{1,19}$'.",
                    )
                numbers[key] = int(params[key])
        limit = numbers.get("limit", REST_DEFAULT_LIMIT)
        if not 1 <= limit <= REST_MAX_LIMIT:
            return _rest_error(
                -1100,
                f"Illegal value in parameter 'limit'; legal range is '1-{REST_MAX_LIMIT}'.",
            )
        start, end = numbers.get("startTime"), numbers.get("endTime")
        if "fromId" in numbers and (start is not None or end is not None):
            return _rest_error(-1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and end - start > REST_MAX_WINDOW_MS:
            return _rest_error(-1127, "More than 1 hours between startTime and endTime.")

        rows = self._agg_rows.get(symbol, [])
        if "fromId" in numbers:
            at = bisect.bisect_left(self._agg_ids.get(symbol, []), numbers["fromId"])
            selected = rows[at : at + limit]
        elif start is not None or end is not None:
            if start is None:
                assert end is not None
                start = end - REST_MAX_WINDOW_MS
            low, high = start, end if end is not None else start + REST_MAX_WINDOW_MS
            selected = [r for r in rows if low <= r["T"] <= high][:limit]
        else:
            selected = rows[-limit:]
        return _json_response(200, selected)

    # -- connection handling --------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        if not isinstance(connection, _Connection) or connection.route is None:
            return  # cannot happen: _process_request parsed the route of every accepted socket
        route, combined, streams = connection.route
        loop = asyncio.get_running_loop()
        remote = connection.remote_address
        info = ConnectionInfo(
            id=next(self._ids),
            path=connection.request.path if connection.request else "",
            route=route,
            combined=combined,
            opened_at=time.time(),
            remote=f"{remote[0]}:{remote[1]}" if isinstance(remote, tuple) else str(remote),
        )
        info._subscriptions.update(dict.fromkeys(streams))
        session = _Session(connection, info)
        self._sessions[info.id] = session
        self.counters.connections_opened += 1

        def on_control_frame(opcode: Opcode, unsolicited: bool) -> None:
            if opcode is Opcode.PONG:
                info.pongs_received += 1
                info.unsolicited_pongs += unsolicited
            if not session.note_incoming(loop.time(), self.max_messages_per_second):
                self._rate_limited(session)

        connection.on_control_frame = on_control_frame
        session.tasks.append(asyncio.create_task(self._writer(session)))
        if self.ping_interval is not None:
            session.tasks.append(asyncio.create_task(self._keepalive(session)))
        if self.max_age is not None:
            session.tasks.append(asyncio.create_task(self._expire(session, self.max_age)))
        try:
            async for message in connection:
                if info.close_reason is not None:
                    break  # already being closed (rate limit from a ping/pong flood, ...)
                if not session.note_incoming(loop.time(), self.max_messages_per_second):
                    self._rate_limited(session)
                    break
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                info.received.append(text)
                self.counters.control_messages += 1
                session.enqueue(self._control(session, text))
                self.counters.frames_queued += 1
        except ConnectionClosed:
            pass
        finally:
            connection.on_control_frame = None
            await connection.wait_closed()
            for task in session.tasks:
                task.cancel()
            await asyncio.gather(*session.tasks, return_exceptions=True)
            info.closed_at = time.time()
            info.close_code = connection.close_code
            if info.close_reason is None:
                info.close_reason = "server_stop" if self._stopping else "client"
            del self._sessions[info.id]
            self.closed_connections.append(info)
            self.counters.connections_closed += 1

    def _rate_limited(self, session: _Session) -> None:
        if session.info.close_reason is not None:
            return
        self.counters.rate_limit_drops += 1
        # Binance drops the connection; the close code it uses is not documented.
        self._spawn(session.close("rate_limit", 1008, "Too many requests"))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _writer(self, session: _Session) -> None:
        ws, info = session.ws, session.info
        while True:
            frame = await session.outbox.get()
            try:
                if session.open:
                    await ws.send(frame, text=True)
                    info.frames_sent += 1
                    self.counters.frames_sent += 1
            except ConnectionClosed:
                pass  # keep draining so flush() does not wait on a dead connection
            finally:
                session.pending -= 1

    async def _keepalive(self, session: _Session) -> None:
        """Ping every ``ping_interval``; end the connection when the oldest unanswered ping is
        ``pong_timeout`` old. Several pings may be outstanding (Binance: 3 min vs 10 min)."""
        assert self.ping_interval is not None
        loop = asyncio.get_running_loop()
        info = session.info
        outstanding: deque[tuple[float, asyncio.Future[float]]] = deque()
        next_ping = loop.time() + self.ping_interval

        def answered(future: asyncio.Future[float]) -> None:
            if not future.cancelled() and future.exception() is None:
                info.pings_answered += 1
                self.counters.pings_answered += 1

        try:
            while True:
                while outstanding and outstanding[0][1].done():
                    outstanding.popleft()
                now = loop.time()
                if outstanding and now - outstanding[0][0] >= self.pong_timeout:
                    self.counters.pong_timeouts += 1
                    await session.close("pong_timeout", 1008, "Pong timeout")
                    return
                if now >= next_ping:
                    # ping() returns a plain Future; ensure_future hands it back unchanged.
                    future = asyncio.ensure_future(await session.ws.ping())
                    future.add_done_callback(answered)
                    info.pings_sent += 1
                    self.counters.pings_sent += 1
                    outstanding.append((now, future))
                    next_ping = now + self.ping_interval
                wake = next_ping
                if outstanding:
                    wake = min(wake, outstanding[0][0] + self.pong_timeout)
                await asyncio.sleep(max(0.0, wake - loop.time()))
        except ConnectionClosed:
            return

    async def _expire(self, session: _Session, max_age: float) -> None:
        await asyncio.sleep(max_age)
        self.counters.max_age_closes += 1
        # Binance's 24-hour cut; the close code it uses is not documented, 1000 is neutral.
        await session.close("max_age", 1000, "Connection max age reached")

    # -- control messages -----------------------------------------------------------------------

    def _control(self, session: _Session, text: str) -> bytes:
        """Answer one client message with Binance's reply or error object."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.counters.control_errors += 1
            return _error_reply(3, f"Invalid JSON: {exc}", None, with_id=False)
        request_id = message.get("id") if isinstance(message, dict) else None
        valid_id = (
            isinstance(request_id, int)
            and not isinstance(request_id, bool)
            and 0 <= request_id <= _MAX_REQUEST_ID
        )
        try:
            if not isinstance(message, dict):
                raise _ControlError(2, "Invalid request: expected a JSON object")
            result = self._dispatch(session, message, valid_id)
        except _ControlError as err:
            self.counters.control_errors += 1
            return _error_reply(err.code, err.msg, request_id if valid_id else None)
        return orjson.dumps({"result": result, "id": request_id})

    def _dispatch(self, session: _Session, message: dict[str, Any], valid_id: bool) -> Any:
        if set(message) - {"method", "params", "id"}:
            raise _ControlError(2, "Invalid request: too many parameters")
        if "method" not in message:
            raise _ControlError(2, "Invalid request: missing field `method`")
        if not valid_id:
            raise _ControlError(2, "Invalid request: request ID must be an unsigned integer")
        method = message["method"]
        if method not in METHODS:
            expected = ", ".join(f"`{m}`" for m in METHODS)
            raise _ControlError(
                2, f"Invalid request: unknown variant `{method}`, expected one of {expected}"
            )
        params = message.get("params")
        info = session.info
        subscriptions = info._subscriptions
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if params is None:
                raise _ControlError(2, "Invalid request: missing field `params`")
            if not isinstance(params, list) or not all(isinstance(p, str) and p for p in params):
                raise _ControlError(1, "Invalid value type: expected an array of stream names")
            if method == "UNSUBSCRIBE":
                for name in params:
                    subscriptions.pop(name, None)
                return None
            new = [name for name in dict.fromkeys(params) if name not in subscriptions]
            if len(subscriptions) + len(new) > self.max_streams:
                # Not documented by Binance; refuse the whole request and keep the connection.
                raise _ControlError(
                    2, f"Invalid request: too many streams (limit {self.max_streams})"
                )
            subscriptions.update(dict.fromkeys(new))
            return None
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise _ControlError(2, "Invalid request: too many parameters")
            return list(subscriptions)
        # SET_PROPERTY ["combined", true] / GET_PROPERTY ["combined"]: codes 0 and 1 come from here.
        wanted = 2 if method == "SET_PROPERTY" else 1
        if params is None:
            raise _ControlError(2, "Invalid request: missing field `params`")
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            raise _ControlError(2, "Invalid request: property name must be a string")
        if len(params) > wanted:
            raise _ControlError(2, "Invalid request: too many parameters")
        if params[0] != "combined":
            raise _ControlError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return info.combined
        if len(params) < wanted or not isinstance(params[1], bool):
            raise _ControlError(1, "Invalid value type: expected Boolean")
        info.combined = params[1]
        return None


# ----------------------------------------------------------------------------------------------
# Frames for benchmarks


def _price_decimals(price: float) -> int:
    return 2 if price >= 10 else 6


def build_agg_trade_frames(
    symbols: Sequence[str],
    count: int,
    *,
    combined: bool = True,
    first_agg_id: int = 1,
    start_time_ms: int | None = None,
    prices: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[bytes]:
    """``count`` aggTrade frames, round-robin over ``symbols``, ready for :meth:`firehose`.

    Per symbol the aggregate ids run from ``first_agg_id`` without gaps and trade times never
    decrease (+1 ms per round); prices follow a small seeded random walk. Built with a bytes
    template rather than a JSON encoder: about 2 µs per frame.
    """
    if not symbols:
        raise ValueError("at least one symbol")
    rng = random.Random(seed)
    start = time.time_ns() // 1_000_000 if start_time_ms is None else start_time_ms
    upper = [s.upper() for s in symbols]
    walk = [float((prices or {}).get(s, 100.0)) for s in upper]
    templates = []
    for s, price in zip(upper, walk, strict=True):
        data = (
            b'{"e":"aggTrade","E":%d,"s":"'
            + s.encode()
            + b'","a":%d,"p":"%.'
            + str(_price_decimals(price)).encode()
            + b'f","q":"%.3f","f":%d,"l":%d,"T":%d,"m":%s}'
        )
        if combined:
            data = b'{"stream":"' + stream_name(s).encode() + b'","data":' + data + b"}"
        templates.append(data)
    frames: list[bytes] = []
    append = frames.append
    n = len(upper)
    for i in range(count):
        k = i % n
        round_ = i // n
        walk[k] *= 1.0 + (rng.random() - 0.5) * 2e-4
        t_ms = start + round_
        trade_id = first_agg_id * 3 + round_  # any increasing raw-trade ids will do
        append(
            templates[k]
            % (
                t_ms,
                first_agg_id + round_,
                walk[k],
                0.001 + rng.random(),
                trade_id,
                trade_id,
                t_ms,
                b"true" if rng.random() < 0.5 else b"false",
            )
        )
    return frames


# ----------------------------------------------------------------------------------------------
# CLI: a demo feed and a firehose measurement


_DEMO_PRICES: Final = {"BTCUSDT": 98000.0, "ETHUSDT": 3500.0, "SOLUSDT": 180.0, "BNBUSDT": 650.0}


async def _demo(args: argparse.Namespace) -> None:
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    rng = random.Random(args.seed)
    base = {s: _DEMO_PRICES.get(s, 100.0) for s in symbols}
    # One common factor plus a mean-reverting idiosyncratic part per symbol, so pairs of the
    # demo feed are correlated and their spread mean-reverts, like the markets spreadbus watches.
    factor = 0.0
    idio = dict.fromkeys(symbols, 0.0)
    async with BinanceServer(
        args.host, args.port, ping_interval=args.ping_interval, max_age=args.max_age
    ) as server:
        streams = "/".join(stream_name(s) for s in symbols)
        print(f"Binance protocol server on {server.ws_url} (REST {server.rest_url})", flush=True)
        print(f"  combined: {server.ws_url}/market/stream?streams={streams}", flush=True)
        print(
            f"  backfill: {server.rest_url}/fapi/v1/aggTrades?symbol={symbols[0]}&limit=10",
            flush=True,
        )
        print(f"  {args.rate:g} trades/s over {len(symbols)} symbol(s); Ctrl-C stops", flush=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signal.SIGTERM, stop.set)  # stop cleanly, like Ctrl-C
        step = 0.01  # publish in 10 ms batches so high rates do not need sub-ms sleeps
        per_step = args.rate * step
        owed = 0.0
        deadline = loop.time() + args.duration if args.duration else math.inf
        next_tick = loop.time()
        while loop.time() < deadline and not stop.is_set():
            owed += per_step
            while owed >= 1.0:
                owed -= 1.0
                symbol = rng.choice(symbols)
                factor += rng.gauss(0.0, 1e-4)
                idio[symbol] = 0.98 * idio[symbol] + rng.gauss(0.0, 2e-4)
                price = base[symbol] * math.exp(factor + idio[symbol])
                server.publish_agg_trade(
                    symbol,
                    f"{price:.{_price_decimals(price)}f}",
                    f"{rng.expovariate(2.0) + 0.001:.3f}",
                    buyer_maker=rng.random() < 0.5,
                )
            next_tick += step
            await asyncio.sleep(max(0.0, next_tick - loop.time()))


async def _bench_firehose(count: int, symbols: Sequence[str], raw_reader: bool) -> float:
    """Frames per second from firehose start until the reader has every frame.

    The reader is a ``websockets`` client in the same process (what the gateway pays), or with
    ``raw_reader`` a TCP socket that discards bytes (what the server alone can push).
    """
    from websockets.asyncio.client import connect  # noqa: PLC0415 (only the benchmark needs it)

    frames = build_agg_trade_frames(symbols, count)
    streams = "/".join(stream_name(s) for s in symbols)
    path = f"/market/stream?streams={streams}"
    async with BinanceServer(ping_interval=None) as server:
        loop = asyncio.get_running_loop()
        if raw_reader:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: c3ByZWFkYnVzLWJlbmNoIQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {head.splitlines()[0]!r}")
            # Unmasked server frames of 126..65535 bytes carry a 4-byte header.
            expected = sum(len(f) + (2 if len(f) < 126 else 4) for f in frames)

            async def read_all() -> None:
                got = 0
                while got < expected:
                    got += len(await reader.read(1 << 20))

            await server.wait_for_connections(1)
            started = loop.time()
            await asyncio.gather(read_all(), server.firehose(frames))
            elapsed = loop.time() - started
            writer.close()
            await writer.wait_closed()
            return count / elapsed
        async with connect(server.ws_url + path, compression=None) as ws:
            await server.wait_for_connections(1)

            async def read_frames() -> None:
                for _ in range(count):
                    await ws.recv()

            started = loop.time()
            await asyncio.gather(read_frames(), server.firehose(frames))
            return count / (loop.time() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spreadbus.testing.binance_server",
        description="Local Binance USDT-M futures market-stream server with a random-walk feed.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--rate", type=float, default=100.0, help="aggTrades per second, total")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 runs until Ctrl-C")
    parser.add_argument("--ping-interval", type=float, default=180.0)
    parser.add_argument("--max-age", type=float, default=24 * 3600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--bench-firehose",
        type=int,
        default=0,
        metavar="N",
        help="instead of serving: push N frames to one local client and print the rate",
    )
    parser.add_argument(
        "--raw-reader",
        action="store_true",
        help="with --bench-firehose: read with a byte-discarding socket (server speed alone)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 100_000:
        parser.error("--rate must be in (0, 100000]")
    try:
        if args.bench_firehose:
            symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
            rate = asyncio.run(_bench_firehose(args.bench_firehose, symbols, args.raw_reader))
            reader = "a raw TCP reader" if args.raw_reader else "a websockets client"
            print(f"firehose: {args.bench_firehose} frames at {rate:,.0f} frames/s to {reader}")
        else:
            asyncio.run(_demo(args))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
