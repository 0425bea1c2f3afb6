"""Binance combined-stream connections: connect, answer pings, watch for silence, roll over.

One :class:`BinanceFeed` spreads the symbols over :class:`FeedConnection` shards of at most
``streams_per_connection`` streams. Each connection

* reconnects with capped exponential backoff and full jitter (never unbounded);
* answers server pings (the client library does it: picows, or websockets, behind
  gateway/wsclient.py) and reconnects when no frame arrives for ``idle_timeout`` seconds: a
  silent feed is a dead feed (BINANCE.md: the old URL stays silent without an error);
* opens its successor before Binance's 24-hour cut and reads both until the new one delivers,
  so no trade is missed; the ingest drops the ones seen twice;
* sends live SUBSCRIBE/UNSUBSCRIBE batches at most every ``CONTROL_GAP`` seconds (Binance drops a
  connection above 10 incoming messages per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spreadbus.bus.codec import epoch_ms
from spreadbus.bus.service import EventLog
from spreadbus.gateway.binance import (
    StreamKind,
    combined_url,
    control_message,
    mark_price_stream,
    stream_name,
    stream_symbol,
)
from spreadbus.gateway.sink import TickSink
from spreadbus.gateway.wsclient import CONNECT_ERRORS, Client, FrameSocket, open_socket

CONTROL_GAP = 0.25  # s between control messages: 4/s, well inside Binance's 10/s
PARAMS_PER_MESSAGE = 100
ROLLOVER_WAIT = 10.0  # s to wait for the successor's first frame before closing the old one


@dataclass(frozen=True, slots=True)
class FeedConfig:
    host: str = "wss://fstream.binance.com"
    route: str = "market"
    kind: StreamKind = "aggTrade"
    streams_per_connection: int = 200
    idle_timeout: float = 30.0
    max_age: float = 23 * 3600.0
    backoff_first: float = 0.5
    backoff_cap: float = 30.0
    open_timeout: float = 10.0
    client: Client = "picows"  # or "websockets" (gateway/wsclient.py)


def backoff_delay(attempt: int, first: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter: uniform in [first/2, min(cap, first*2^n)]."""
    ceiling = min(cap, first * (2**attempt))
    return rng.uniform(min(first / 2, ceiling), ceiling)


class FeedConnection:
    _ids = itertools.count(1)

    def __init__(self, feed: BinanceFeed, streams: Iterable[str]) -> None:
        self.feed = feed
        self.index = next(self._ids)
        self.streams: set[str] = set(streams)
        self.to_subscribe: set[str] = set()
        self.to_unsubscribe: set[str] = set()
        self.last_frame = time.monotonic()
        self.frames_by_socket: dict[int, int] = {}
        self._request_ids = itertools.count(1)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        cfg = self.feed.config
        return combined_url(cfg.host, cfg.route, sorted(self.streams))

    def subscribe(self, streams: Iterable[str]) -> None:
        new = set(streams) - self.streams
        self.streams |= new
        self.to_subscribe |= new
        self.to_unsubscribe -= new

    def unsubscribe(self, streams: Iterable[str]) -> None:
        gone = set(streams) & self.streams
        self.streams -= gone
        self.to_unsubscribe |= gone
        self.to_subscribe -= gone

    async def run(self, stop: asyncio.Event) -> None:
        log, counters = self.feed.log, self.feed.counters
        attempt = 0
        while not stop.is_set() and self.streams:
            started = time.monotonic()
            try:
                socket = await self._open()
            except CONNECT_ERRORS as exc:
                log.warning("connect failed", conn=self.index, error=str(exc) or repr(exc))
            else:
                self.feed.connected.set()
                reason = await self._session(socket, stop)
                if reason == "stop":
                    return
                log.warning("connection lost", conn=self.index, reason=reason)
                if time.monotonic() - started > 30:
                    attempt = 0  # it was healthy: start the backoff afresh
            counters["reconnects"] += 1
            delay = backoff_delay(
                attempt, self.feed.config.backoff_first, self.feed.config.backoff_cap, self.feed.rng
            )
            attempt += 1
            log.info("reconnecting", conn=self.index, delay_s=round(delay, 2), attempt=attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _open(self) -> FrameSocket:
        # Subscriptions in flight are folded into the URL of the new connection.
        self.to_subscribe.clear()
        self.to_unsubscribe.clear()
        config = self.feed.config
        socket = await open_socket(self.url, config.open_timeout, config.client)
        self.last_frame = time.monotonic()
        self.feed.log.info("connected", conn=self.index, streams=len(self.streams))
        return socket

    async def _read(self, socket: FrameSocket) -> None:
        sink, key, counts = self.feed.sink, id(socket), self.frames_by_socket
        counts[key] = 0
        monotonic, on_frame = time.monotonic, sink.on_frame

        def frame(data: bytes | str) -> None:
            self.last_frame = monotonic()
            counts[key] += 1
            on_frame(data, epoch_ms(), "binance")

        await socket.read(frame)

    async def _session(self, socket: FrameSocket, stop: asyncio.Event) -> str:
        """Read until stop, silence, close or rollover failure; returns why it ended."""
        cfg = self.feed.config
        opened = time.monotonic()
        reader = asyncio.create_task(self._read(socket))
        last_control = 0.0
        try:
            while True:
                done, _ = await asyncio.wait({reader}, timeout=0.1)
                if stop.is_set():
                    return "stop"
                if done:
                    exc = reader.exception()
                    return f"closed ({exc or socket.close_code})"
                now = time.monotonic()
                if now - self.last_frame > cfg.idle_timeout:
                    self.feed.counters["idle_reconnects"] += 1
                    return f"silent for {cfg.idle_timeout:g} s"
                if now - opened > cfg.max_age:
                    rolled = await self._rollover(socket, reader)
                    if rolled is not None:
                        socket, reader = rolled
                        opened = time.monotonic()
                if (self.to_subscribe or self.to_unsubscribe) and now - last_control > CONTROL_GAP:
                    await self._send_control(socket)
                    last_control = now
                if not self.streams:
                    return "stop"
        finally:
            reader.cancel()
            with contextlib.suppress(Exception):
                await socket.close()

    async def _rollover(
        self, old: FrameSocket, old_reader: asyncio.Task[None]
    ) -> tuple[FrameSocket, asyncio.Task[None]] | None:
        """Open the successor, read both until it delivers, then retire the old one."""
        log = self.feed.log
        try:
            new = await self._open()
        except CONNECT_ERRORS as exc:
            log.warning("rollover connect failed; keeping the old connection", error=str(exc))
            return None
        reader = asyncio.create_task(self._read(new))
        deadline = time.monotonic() + ROLLOVER_WAIT
        while self.frames_by_socket.get(id(new), 0) == 0 and time.monotonic() < deadline:
            if reader.done():
                break
            await asyncio.sleep(0.01)
        if reader.done():
            log.warning("rollover successor closed at once; keeping the old connection")
            return None
        old_reader.cancel()
        with contextlib.suppress(Exception):
            await old.close()
        self.frames_by_socket.pop(id(old), None)
        self.feed.counters["rollovers"] += 1
        log.info("rolled over to a fresh connection", conn=self.index)
        return new, reader

    async def _send_control(self, socket: FrameSocket) -> None:
        """One SUBSCRIBE or UNSUBSCRIBE batch per call (the caller spaces the calls)."""
        method, pending = (
            ("UNSUBSCRIBE", self.to_unsubscribe)
            if self.to_unsubscribe
            else ("SUBSCRIBE", self.to_subscribe)
        )
        batch = sorted(pending)[:PARAMS_PER_MESSAGE]
        pending.difference_update(batch)
        await socket.send(control_message(method, next(self._request_ids), batch).decode())
        self.feed.counters[f"{method.lower()}_sent"] += 1
        self.feed.log.info(method.lower(), conn=self.index, streams=len(batch))


class BinanceFeed:
    def __init__(
        self,
        config: FeedConfig,
        sink: TickSink,
        log: EventLog,
        counters: dict[str, int],
        seed: int = 0,
    ) -> None:
        self.config = config
        self.sink = sink
        self.log = log
        self.counters = counters
        self.rng = random.Random(seed)
        self.connections: list[FeedConnection] = []
        self.connected = asyncio.Event()
        self._stop: asyncio.Event | None = None

    def _streams(self, symbols: Iterable[str]) -> set[str]:
        streams = {stream_name(s, self.config.kind) for s in symbols}
        if self.config.route == "market":  # markPrice (funding) is served on the market route
            streams |= {mark_price_stream(stream_symbol(s)) for s in streams}
        return streams

    def _start(self, connection: FeedConnection) -> None:
        assert self._stop is not None
        self.connections.append(connection)
        connection.task = asyncio.create_task(connection.run(self._stop))

    async def run(self, symbols: Sequence[str], stop: asyncio.Event) -> None:
        self._stop = stop
        self.set_symbols(symbols)
        await stop.wait()
        tasks = [c.task for c in self.connections if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def set_symbols(self, symbols: Iterable[str]) -> None:
        """Move to this set of symbols live: unsubscribe the gone, subscribe the new (filling
        connections that have room first), open connections for the rest."""
        wanted = self._streams(symbols)
        current: set[str] = set().union(*(c.streams for c in self.connections))
        for connection in self.connections:
            connection.unsubscribe(connection.streams - wanted)
        self.connections = [c for c in self.connections if c.streams or c.to_unsubscribe]
        new = sorted(wanted - current)
        per = self.config.streams_per_connection
        for connection in self.connections:
            room = per - len(connection.streams)
            if new and room > 0:
                connection.subscribe(new[:room])
                new = new[room:]
        for start in range(0, len(new), per):
            self._start(FeedConnection(self, new[start : start + per]))
