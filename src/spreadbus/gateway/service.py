"""``spreadbus gateway``: one source (binance | sim | replay:PATH | auto) into the bus.

The source feeds :class:`~spreadbus.gateway.ingest.Ingest`; a config watcher follows
``config:pairs`` live; once a second each symbol's latency and last prices go to
``state:feed:{SYMBOL}`` (the gateway's own hash; the engine writes ``state:analytics:*``).
``auto`` tries Binance and, if no connection succeeds within ``auto_fallback_after`` seconds,
switches to the simulated market, loudly (log and health).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

import redis.exceptions
from redis.typing import EncodableT, FieldT

from spreadbus import heap
from spreadbus.bus import keys
from spreadbus.bus.configstore import ConfigWatcher, load_pairs, symbols_of
from spreadbus.bus.connect import AsyncRedis, pipelined
from spreadbus.bus.health import HealthState
from spreadbus.bus.lease import member_name
from spreadbus.bus.service import REDIS_ERRORS, EventLog, run_service
from spreadbus.bus.ticks import TickWriter, last_trades
from spreadbus.config import Settings
from spreadbus.gateway.backfill import Backfiller
from spreadbus.gateway.ghost import GhostConfig, GhostVenue
from spreadbus.gateway.ingest import Ingest, IngestConfig
from spreadbus.gateway.shares import SymbolShares
from spreadbus.gateway.ws import BinanceFeed, FeedConfig

if TYPE_CHECKING:
    from spreadbus.gateway.replay import Overlap
    from spreadbus.gateway.sim import SimMarket

STATE_INTERVAL = 1.0
FUNDING_RETENTION_MS = 24 * 3600 * 1000
CONFIG_POLL_S = 30.0  # re-read config:pairs this often even without an announcement


def feed_config(settings: Settings) -> FeedConfig:
    route = "market" if settings.binance_stream == "aggTrade" else settings.binance_trade_route
    return FeedConfig(
        host=settings.binance_ws_url,
        route=route,
        kind=settings.binance_stream,
        streams_per_connection=settings.binance_streams_per_connection,
        idle_timeout=settings.binance_idle_timeout,
        max_age=settings.binance_max_connection_age,
    )


def ghost_config(settings: Settings) -> GhostConfig:
    return GhostConfig(
        noise_bps=settings.ghost_noise_bps,
        delay_ms=settings.ghost_delay_ms,
        jitter_ms=settings.ghost_delay_jitter_ms,
        dislocation_prob=settings.ghost_dislocation_prob,
        dislocation_bps=settings.ghost_dislocation_bps,
    )


class Gateway:
    name = "gateway"

    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        self.settings = settings
        self.client = client
        self.log = log
        self.source = settings.source
        self.pairs: list[str] = []
        self.ingest = Ingest(
            TickWriter(client),
            GhostVenue(ghost_config(settings), settings.seed),
            log,
            IngestConfig(
                retention_ms=int(settings.stream_retention * 1000),
                track_gaps=not settings.source.startswith("replay:"),
            ),
            symbols=set(),
        )
        self.health_state = HealthState()
        self.feed: BinanceFeed | None = None
        self.backfill: Backfiller | None = None
        self._rates: dict[str, tuple[float, int]] = {}
        # latency percentiles per symbol, refreshed by the state loop (cost: sorting a window),
        # read by the heartbeat, so no caller summarizes every symbol at once
        self._latency_fields: dict[str, dict[str, float]] = {}
        self._funding_ms: dict[str, int] = {}  # event time of the last funding sample written
        # --shard auto / up --gateways N: only the symbols of the shares this process holds
        sharded = settings.shard == "auto" or settings.gateways > 1
        self.shares = SymbolShares(settings, client, log) if sharded else None
        self.name = member_name("gateway", settings.instance)
        self._market: SimMarket | None = None

    async def _load_symbols(self) -> list[str]:
        self.pairs = await load_pairs(self.client, self.settings.pairs)
        symbols = list(symbols_of(self.pairs))
        if self.shares is not None:
            symbols = self.shares.mine(symbols)
        assert self.ingest.symbols is not None
        self.ingest.symbols.clear()
        self.ingest.symbols.update(symbols)
        return symbols

    async def run(self, stop: asyncio.Event) -> None:
        if self.shares is not None:
            await self.shares.start()
        symbols = await self._load_symbols()
        await self.ingest.writer.prepare(symbols)
        self.ingest.last_seen.update(await last_trades(self.client, symbols))
        self.log.info("ready", source=self.source, symbols=len(symbols), pairs=len(self.pairs))
        heap.settle()  # what is built lives as long as the process (spreadbus.heap)
        flush_stop = asyncio.Event()
        # essential tasks: if one ends, the heartbeat says failing (bus/health.py)
        flusher = self.health_state.spawn("flusher", self.ingest.run(flush_stop))
        watcher = ConfigWatcher(self.client, self._apply_config, CONFIG_POLL_S)
        helpers = [
            self.health_state.spawn("state writer", self._state_loop(stop)),
            self.health_state.spawn("config watcher", watcher.run(stop)),
        ]
        if self.shares is not None:
            shares = self.shares.run(stop, self._apply_config, self.ingest)
            helpers.append(self.health_state.spawn("shares", shares))
        try:
            await self._run_source(symbols, stop)
            await stop.wait()  # a finished replay keeps the service (and its state) up
        finally:
            self.health_state.tasks.clear()  # stopping: their end is no failure
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            flush_stop.set()
            await flusher
            if self.shares is not None:  # only now: the survivor resumes after our last tick
                await self.shares.close()

    async def _run_source(self, symbols: list[str], stop: asyncio.Event) -> None:
        source = self.settings.source
        if source == "sim":
            await self._run_sim(symbols, stop)
        elif source.startswith("replay:"):
            await self._run_replay(source.removeprefix("replay:"), stop)
        elif source == "binance":
            await self._run_binance(symbols, stop)
        else:  # auto
            await self._run_auto(symbols, stop)

    def _make_feed(self) -> BinanceFeed:
        self.feed = BinanceFeed(
            feed_config(self.settings), self.ingest, self.log, self.ingest.counters,
            seed=self.settings.seed,
        )  # fmt: skip
        if self.settings.binance_stream == "aggTrade":
            self.backfill = Backfiller(self.settings.binance_rest_url, self.ingest, self.log)
            self.ingest.on_gap = self.backfill.request
        return self.feed

    async def _run_binance(self, symbols: list[str], stop: asyncio.Event) -> None:
        await self._make_feed().run(symbols, stop)

    async def _run_auto(self, symbols: list[str], stop: asyncio.Event) -> None:
        feed_stop = asyncio.Event()
        feed = self._make_feed()
        binance = asyncio.create_task(feed.run(symbols, feed_stop))
        waiter = asyncio.create_task(feed.connected.wait())
        await asyncio.wait({waiter, binance}, timeout=self.settings.auto_fallback_after)
        waiter.cancel()
        if feed.connected.is_set():
            self.source = "binance"
            stopper = asyncio.create_task(self._relay(stop, feed_stop))
            await binance
            stopper.cancel()
            return
        feed_stop.set()
        await binance
        self.feed = None
        self.ingest.on_gap = None
        self.source = "sim (fallback: binance unreachable)"
        self.log.error(
            "binance unreachable; falling back to the simulated market",
            waited_s=self.settings.auto_fallback_after,
            url=self.settings.binance_ws_url,
        )
        await self._run_sim(symbols, stop)

    @staticmethod
    async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
        await source.wait()
        target.set()

    async def _run_sim(self, symbols: list[str], stop: asyncio.Event) -> None:
        from spreadbus.gateway.sim import SimMarket, run_sim  # noqa: PLC0415

        if not self.source.startswith("sim"):
            self.source = "sim"
        market = SimMarket(
            self.pairs, seed=self.settings.seed, start_ms=int(time.time() * 1000),
            resume_after=self.ingest.last_seen,  # the bus's last trades: no id issued twice
        )  # fmt: skip
        self._market = market
        self.ingest.config = IngestConfig(
            retention_ms=self.ingest.config.retention_ms, track_gaps=False
        )
        await run_sim(market, self.ingest, stop, speed=self.settings.speed or 0.0)

    async def _run_replay(self, path: str, stop: asyncio.Event) -> None:
        from spreadbus.gateway.replay import ReplayError, overlap_message, run_replay  # noqa: PLC0415

        def overlap(found: list[Overlap]) -> None:
            self.ingest.notice("replay_overlap", overlap_message(found, self.settings.data_dir))

        try:
            stats = await run_replay(
                path, self.ingest, stop, speed=self.settings.speed,
                bus_last=dict(self.ingest.last_seen), on_overlap=overlap,
            )  # fmt: skip
        except ReplayError as exc:
            self.log.error("replay failed", path=path, error=str(exc))
            return
        self.log.info("replay finished", path=path, stats=str(stats))

    async def _apply_config(self) -> None:
        before = set(self.ingest.symbols or ())
        symbols = await self._load_symbols()
        added = [s for s in symbols if s not in before]
        if added:
            assert self.ingest.symbols is not None
            self.ingest.symbols.difference_update(added)  # not before their last trades
            await self.ingest.writer.prepare(added)
            # taken over from another gateway: continue after the bus's last trades
            last = await last_trades(self.client, added)
            self.ingest.last_seen.update(last)
            if self._market is not None:
                self._market.resume(last)
            self.ingest.symbols.update(added)
        if self.feed is not None:
            self.feed.set_symbols(symbols)
        removed = sorted(before - set(symbols))
        if added or removed:
            self.log.info("pairs changed", pairs=len(self.pairs), added=added, removed=removed)

    async def _state_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATE_INTERVAL)
            try:
                await self._write_state()
            except (*REDIS_ERRORS, redis.exceptions.ResponseError):
                continue  # the flusher reports outages; state is overwritten next second

    def _symbol_state(self, symbol: str, now: float) -> dict[FieldT, EncodableT]:
        state: dict[FieldT, EncodableT] = {}
        latency = self._latency_fields[symbol] = self.ingest.latency[symbol].fields()
        state.update(latency)
        tick = self.ingest.last_tick.get(symbol)
        count = self.ingest.per_symbol[symbol]
        last_time, last_count = self._rates.get(symbol, (now, count))
        if now > last_time:
            state["tick_rate"] = round((count - last_count) / (now - last_time), 2)
        self._rates[symbol] = (now, count)
        state["ticks_total"] = count
        if tick is not None:
            state["last_price"] = tick.price
            state["last_trade_ms"] = tick.trade_ts
        ghost = self.ingest.last_ghost.get(symbol)
        if ghost is not None:
            state["ghost_price"] = ghost.price
            if tick is not None:
                state["ghost_basis_bps"] = round((float(ghost.price) / tick.price_f - 1) * 1e4, 3)
        state["source"] = self.source
        state.update(self.ingest.funding.fields(symbol))
        return state

    async def _write_state(self) -> None:
        now = time.monotonic()
        symbols = sorted(self.ingest.symbols or ())
        for gone in self._latency_fields.keys() - set(symbols):
            del self._latency_fields[gone]
        commands: list[tuple[EncodableT, ...]] = []
        for symbol in symbols:
            state = self._symbol_state(symbol, now)
            commands.append(("HSET", keys.feed_state(symbol), *chain.from_iterable(state.items())))
            mark = self.ingest.funding.latest.get(symbol)
            if mark is not None and self._funding_ms.get(symbol) != mark.event_ms:
                self._funding_ms[symbol] = mark.event_ms
                commands.append((
                    "TS.ADD", keys.funding_series(symbol), mark.event_ms, mark.funding_rate,
                    "RETENTION", FUNDING_RETENTION_MS, "ON_DUPLICATE", "LAST",
                    "LABELS", "symbol", symbol, "kind", "funding",
                ))  # fmt: skip
            # A symbol's summary costs a fraction of a millisecond; with hundreds of
            # symbols, one pass without a break would hold every tick's flush back.
            await asyncio.sleep(0)
        for reply in await pipelined(self.client, commands):
            if isinstance(reply, Exception):
                raise reply

    def health(self) -> Mapping[str, Any]:
        out: dict[str, Any] = {"source": self.source, "pairs": len(self.pairs)}
        out.update(self.ingest.health())
        failing_s = out.get("write_failing_s")
        if failing_s is None:
            self.health_state.clear("writes")
        else:  # batches kept and retried: late, not lost (yet)
            reason = f"tick writes failing for {failing_s} s: {out.get('write_last_error', '')}"
            self.health_state.set("writes", "degraded", reason[:300])
        # the worst symbol's latency: one number that says whether the feed is healthy
        for name in ("latency_ingest_p99_ms", "latency_exchange_p99_ms"):
            values = [fields[name] for fields in self._latency_fields.values() if name in fields]
            if values:
                out[f"worst_{name}"] = max(values)
        return out

    async def close(self) -> None:
        if self.backfill is not None:
            await self.backfill.close()


def main(settings: Settings) -> int:
    return run_service(Gateway, member_name("gateway", settings.instance), settings)
