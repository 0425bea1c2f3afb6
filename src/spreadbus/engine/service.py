"""``spreadbus engine``: the QuantEngine service.

The loop: read what is waiting on the configured symbols' streams (real and ghost) after the
stored cursor, apply it (:class:`~spreadbus.engine.core.EngineCore`), write the batch's
results and cursor together (:class:`~spreadbus.engine.writer.SnapshotWriter`), then spend a
few milliseconds on deferred statistics; repeat. The next read is already on its way (on a
connection of its own) while a batch is written and jobs run. ``channel:config`` (or a poll
every 30 s, in case a message was missed) makes it re-read ``config:pairs`` and
``config:alerts`` between two batches: a new pair's legs are warmed from history and read
from their stream head, a removed pair's snapshot and a dropped symbol's cursor are deleted.

Every heartbeat interval (at least 1 s) an ``engine stats`` event on ``channel:logs`` reports
batch sizes, processing time, end-to-end latency (with a mergeable histogram), where the
loop's time went, job (refit, ADF, ...) durations and the lag behind the stream heads
(:mod:`spreadbus.engine.diagnostics`).

If Redis goes away, the engine does not retry half-known writes: it waits for Redis and
rebuilds its state from the stored cursor and the price series, exactly as a restart would,
so every entry is still processed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Coroutine, Mapping
from functools import partial
from typing import Any, Final

from spreadbus import heap
from spreadbus.analytics import load_fitting_libraries
from spreadbus.bus import keys, streamid
from spreadbus.bus.codec import epoch_ms
from spreadbus.bus.configstore import ConfigWatcher, load_pairs, symbols_of
from spreadbus.bus.connect import AsyncRedis, is_cluster, pipelined
from spreadbus.bus.health import HealthState
from spreadbus.bus.lease import share_of
from spreadbus.bus.service import REDIS_ERRORS, EventLog, run_service
from spreadbus.config import Settings
from spreadbus.engine.consumer import (
    StreamBatch,
    StreamReader,
    load_cursor,
    plan_start,
    reader_client,
    stream_heads,
)
from spreadbus.engine.core import EngineCore, StreamPosition, WriteSet
from spreadbus.engine.diagnostics import Report
from spreadbus.engine.feed import FEED_EVERY_S, FEED_FIELDS, leg_funding
from spreadbus.engine.offload import Offloader
from spreadbus.engine.pairstate import Job
from spreadbus.engine.rulestore import load_rules
from spreadbus.engine.warmstart import warm_bars
from spreadbus.engine.writer import SnapshotWriter, WriteError, ensure_pair_series

JOB_BUDGET_S: Final = 0.003  # deferred statistics per loop turn, at most about this long
CONFIG_POLL_S: Final = 30.0


def _worth_logging(total: int) -> bool:
    """The first few occurrences, then at powers of two: visible, never a flood."""
    return total <= 5 or total & (total - 1) == 0


class QuantEngine:
    name = "engine"

    def __init__(
        self,
        settings: Settings,
        client: AsyncRedis,
        log: EventLog,
        share: tuple[int, int] | None = None,
        owner: str = "",
    ) -> None:
        """``share``: (shard, shards) to serve only the pairs of that share, with the share's
        own cursor, its batches fenced by the share's lease held by ``owner``
        (:mod:`spreadbus.engine.shards`); None: every pair."""
        self.settings = settings
        self.client = client
        self.log = log
        self.share = share
        cluster = is_cluster(client)
        self.read_client = reader_client(settings)
        self.reader = StreamReader(self.read_client, grouped=cluster)
        cursor_key = keys.engine_share_cursor(*share) if share else None
        self.legacy_cursor_key = keys.legacy_engine_share_cursor(*share) if share else None
        fence = (keys.lease("engine", share[0]), owner) if share else None
        self.writer = SnapshotWriter(client, cluster, cursor_key, fence)
        self.core = EngineCore(settings.window)
        self.offloader = Offloader(self._job_completed)  # the OU fits' worker process
        self.pairs: list[str] = []
        self.invalid_rules: dict[str, str] = {}
        self.counters: Counter[str] = Counter()
        self.report = Report()
        self.last_report: dict[str, Any] = {}
        self._beside: dict[str, asyncio.Task[None]] = {}  # see _beside_the_loop
        self.warm_sources: dict[str, str] = {}
        self._config_changed = asyncio.Event()
        self.ready = asyncio.Event()  # set once the state is built (windows warm)
        self.health_state = HealthState()
        # applied by the loop between two batches; the watcher only flags the change
        self.config_watcher = ConfigWatcher(client, self._flag_config_change, CONFIG_POLL_S)

    # ---- lifecycle ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        # Listen before reading the configuration: a change announced while the state is being
        # built is then applied right after, not missed until the next poll.
        watcher = self.health_state.spawn("config watcher", self.config_watcher.run(stop))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.config_watcher.subscribed.wait(), 5.0)
            await self._start()
            await self._loop(stop)
        finally:
            self.health_state.tasks.clear()  # stopping: its end is no failure
            self.offloader.close()
            for task in self._beside.values():
                task.cancel()
            await asyncio.gather(*self._beside.values(), return_exceptions=True)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _start(self) -> None:
        """Build the state from Redis: config, cursors, warm windows, alert states."""
        await self.writer.prepare()
        # in a thread: the heartbeat keeps beating through the second or so it takes
        await asyncio.to_thread(load_fitting_libraries)
        if self.legacy_cursor_key and await self.writer.adopt(self.legacy_cursor_key):
            self.log.warning(
                "share cursor moved to its lease's slot (fenced on a cluster too)",
                old=self.legacy_cursor_key, new=self.writer.cursor_key,
            )  # fmt: skip
        self.core = EngineCore(self.settings.window)
        self.core.jobs.offload = self.offloader.submit
        self.pairs = []
        await self._apply_config(initial=True)
        self.log.info(
            "ready", pairs=len(self.pairs), symbols=len(self.core.symbols),
            rules=len(self.core.alerts.rules), window=self.settings.window,
            warm=dict(sorted(self.warm_sources.items())),
        )  # fmt: skip
        heap.settle()  # what is built lives as long as the process (spreadbus.heap)
        self.ready.set()

    async def _recover(self, stop: asyncio.Event, error: BaseException) -> None:
        """Redis went away: wait for it, then rebuild from what it stored."""
        self.counters["recoveries"] += 1
        self.log.warning(
            "redis unavailable; will rebuild from the stored cursor", error=repr(error)
        )
        self.health_state.set("redis", "degraded", f"redis unavailable: {error!r}"[:300])
        delay = 0.2
        while not stop.is_set():
            try:
                await self.client.ping()
                await self._start()
                self.health_state.clear("redis")
                return
            except REDIS_ERRORS:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 1.0)  # back within a second of Redis

    # ---- the loop -------------------------------------------------------------------------
    async def _loop(self, stop: asyncio.Event) -> None:
        """Read, apply, write, repeat. The next read is sent as soon as a batch is applied, so
        Redis prepares it while the batch is being written and deferred statistics run; a
        read-ahead commits nothing, so a crash still resumes from the stored cursor."""
        interval = max(1.0, self.settings.heartbeat_interval)
        report_at = time.monotonic() + interval
        feed_at = time.monotonic()
        reading: asyncio.Task[StreamBatch] | None = None
        try:
            while not stop.is_set():
                try:
                    if reading is None:
                        reading = self._read_ahead()
                    waited = time.perf_counter()
                    batch = await reading
                    reading = None
                    self.report.add_phase("read", (time.perf_counter() - waited) * 1000.0)
                    if self._config_changed.is_set():  # announced, polled or resubscribed
                        self._config_changed.clear()
                        await self._apply_config()
                    out, entries, began = self._apply(batch)
                    # the write goes out first: Redis answers in order, and latency counts
                    # until the write is stored; the next read follows right behind it
                    storing = asyncio.create_task(self._store(out, entries, began))
                    reading = self._read_ahead()
                    await storing
                    self._run_jobs()
                    if time.monotonic() >= feed_at:
                        self._beside_the_loop("funding feed", self._read_feed())
                        feed_at = time.monotonic() + FEED_EVERY_S
                    if time.monotonic() >= report_at:
                        self._beside_the_loop("report", self._publish_report(interval))
                        report_at = time.monotonic() + interval
                except REDIS_ERRORS as exc:
                    await _cancelled(reading)
                    reading = None
                    await self._recover(stop, exc)
        finally:
            await _cancelled(reading)

    def _beside_the_loop(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        """Run a once-a-second read (the legs' funding, the report's stream heads) beside the
        loop rather than in it: awaited there, its round trip held the next batch back, 1-6 ms
        a second measured in the engine at 10k ticks/s. One of each at a time; a Redis error
        is left to the loop, which meets the same outage on its next read."""
        running = self._beside.get(name)
        if running is not None and not running.done():
            work.close()  # the last one is still out: skip this beat
            return
        task = asyncio.create_task(work, name=f"engine {name}")
        task.add_done_callback(partial(self._beside_done, name))
        self._beside[name] = task

    def _beside_done(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, REDIS_ERRORS):
            self.counters["background_errors"] += 1
            self.log.error(f"{name} failed", error=repr(exc))

    async def _read_feed(self) -> None:
        """The legs' funding from the gateway's ``state:feed`` hashes, once a second: each
        pair's carry and mark-to-index basis (:meth:`EngineCore.apply_funding`)."""
        symbols = list(self.core.symbols)
        if not symbols:
            return
        answers = await pipelined(
            self.client, [("HMGET", keys.feed_state(symbol), *FEED_FIELDS) for symbol in symbols]
        )
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        legs = {
            symbol: leg_funding(dict(zip(FEED_FIELDS, answer, strict=True)))
            for symbol, answer in zip(symbols, answers, strict=True)
        }
        self.core.apply_funding(legs, int(epoch_ms()))

    def _read_ahead(self) -> asyncio.Task[StreamBatch]:
        core = self.core
        positions = {stream: p.last_id for stream, p in core.positions.items()}
        block = not (len(core.jobs) or core.jobs.has_completed or core.has_pending_writes)
        return asyncio.create_task(self.reader.read(positions, block), name="engine-read")

    def _apply(self, batch: StreamBatch) -> tuple[WriteSet, int, float]:
        """Ingest a read and advance the pairs; what to write, entries read, start time."""
        began = time.perf_counter()
        core = self.core
        core.begin_batch()
        entries = 0
        for stream, items in batch:
            core.ingest(stream, items, idle=len(items) < self.reader.count)
            entries += len(items)
        out = core.step(epoch_ms())
        self.report.add_phase("apply", (time.perf_counter() - began) * 1000.0)
        return out, entries, began

    async def _store(self, out: WriteSet, entries: int, began: float) -> None:
        written = time.perf_counter()
        if out:
            self.counters["pair_updates"] += len(out.pair_fields)  # pairs a batch moved
            try:
                await self.writer.write(out)
            except WriteError as exc:  # stored, except the commands Redis refused
                self.counters["write_errors"] += 1
                if _worth_logging(self.counters["write_errors"]):
                    self.log.error("write partly refused", error=str(exc))
        stored = time.perf_counter()
        report = self.report
        report.add_phase("write", (stored - written) * 1000.0)
        report.add_latencies(epoch_ms(), out.recv_ms)
        if entries:
            report.add_batch(entries, (stored - began) * 1000.0)
        self._log_bad_entries()

    def _job_completed(self, job: Job, outcome: object, compute_ms: float) -> None:
        """An offloaded job's outcome goes to the current core (a rebuilt one after a
        recovery: a late result for the old state changes nothing written)."""
        self.core.jobs.complete(job, outcome, compute_ms)

    def _run_jobs(self) -> None:
        if len(self.core.jobs) or self.core.jobs.has_completed:
            began = time.perf_counter()
            self.core.run_jobs(JOB_BUDGET_S)
            self.report.add_phase("jobs", (time.perf_counter() - began) * 1000.0)

    # ---- configuration --------------------------------------------------------------------
    async def _apply_config(self, initial: bool = False) -> None:
        core = self.core
        pairs = await load_pairs(self.client, self.settings.pairs)
        if self.share is not None:
            pairs = [p for p in pairs if share_of(p, self.share[1]) == self.share[0]]
        rules, invalid = await load_rules(self.client)
        for rule_id, reason in invalid.items():
            if self.invalid_rules.get(rule_id) != reason:
                self.log.warning("invalid alert rule skipped", rule=rule_id, reason=reason)
        self.invalid_rules = invalid
        core.set_rules(rules)
        if initial:
            states: Any = await self.client.hgetall(keys.alert_state())
            core.alerts.load_states(states)
        wanted = symbols_of(pairs)
        gone_pairs = [p for p in core.pairs if p not in pairs]
        gone_symbols = [s for s in core.symbols if s not in wanted]
        for pair in gone_pairs:
            core.remove_pair(pair)
        for symbol in gone_symbols:
            core.remove_symbol(symbol)
            self.warm_sources.pop(symbol, None)
        await self.writer.forget(gone_pairs, gone_symbols, core.counts())
        new_symbols = [s for s in wanted if s not in core.symbols]
        await self._add_symbols(new_symbols)
        new_pairs = [p for p in pairs if p not in core.pairs]
        for pair in new_pairs:
            await ensure_pair_series(self.client, pair)
            core.add_pair(pair)
        self.pairs = pairs
        if not initial and (gone_pairs or new_pairs or gone_symbols or new_symbols):
            self.log.info(
                "pairs changed", pairs=len(pairs), added=new_pairs, removed=gone_pairs,
                symbols_added=new_symbols, symbols_removed=gone_symbols,
            )  # fmt: skip

    async def _add_symbols(self, symbols: list[str]) -> None:
        if not symbols:
            return
        streams = [k for s in symbols for k in (keys.tick_stream(s), keys.ghost_stream(s))]
        saved = await load_cursor(self.client, self.writer.cursor_key)
        heads = await stream_heads(self.client, streams)
        span = self.core.history_s
        new_positions: dict[str, StreamPosition] = {}
        for symbol in symbols:
            real, ghost = keys.tick_stream(symbol), keys.ghost_stream(symbol)
            start = plan_start(real, saved.get(real), heads.get(real))
            if start.trimmed_after is not None:
                self.counters["trimmed_gaps"] += 1
                self.log.warning(
                    "ticks trimmed before the engine read them; windows warmed from the price "
                    "series instead", stream=real, cursor=start.trimmed_after,
                    resume=start.position.last_id,
                )  # fmt: skip
            bars: list[tuple[int, float]] = []
            last_ms = 0
            source = "none"
            if start.warm_until_ms is not None:
                bars, last_ms, source = await warm_bars(
                    self.client, symbol, start.warm_until_ms, span, self.settings.data_dir
                )
            self.warm_sources[symbol] = f"{source}:{len(bars)}"
            self.core.add_symbol(symbol, bars, last_ms)
            ghost_start = plan_start(ghost, saved.get(ghost), heads.get(ghost))
            for stream, begin in ((real, start), (ghost, ghost_start)):
                self.core.set_position(stream, begin.position)
                if saved.get(stream) != begin.position:
                    new_positions[stream] = begin.position
        # A stream started at its head must keep that start: if the engine stopped before its
        # first batch, starting again at the then newest id would skip what came in between.
        await self.writer.save_positions(new_positions, self.core.counts())

    async def _flag_config_change(self) -> None:
        self._config_changed.set()

    # ---- diagnostics ----------------------------------------------------------------------
    def _log_bad_entries(self) -> None:
        for bad in self.core.take_bad_entries():
            if _worth_logging(self.core.bad):
                self.log.warning(
                    "bad stream entry skipped", stream=bad.stream, id=bad.entry_id,
                    reason=bad.reason[:200], total=self.core.bad,
                )  # fmt: skip

    async def _publish_report(self, seconds: float) -> None:
        summary = self.report.summary(seconds)
        self.report = Report()
        core = self.core
        streams = list(core.positions)
        heads = await stream_heads(self.client, streams)
        lag = {
            stream: streamid.ms_of(heads[stream].last_id) - streamid.ms_of(position.last_id)
            for stream, position in core.positions.items()
            if stream in heads and position.last_id != "0-0"
        }
        jobs = {
            kind: {"runs": s.runs, "mean_ms": round(s.total_ms / s.runs, 3),
                   "max_ms": round(s.max_ms, 3)}
            for kind, s in core.jobs.take_stats().items()
        }  # fmt: skip
        summary.update(
            lag_ms=max(lag.values(), default=0),
            lag_stream=max(lag, key=lambda k: lag[k]) if lag else "",
            jobs=jobs,
            jobs_waiting=len(core.jobs) + self.offloader.busy,
            ticks_total=core.ticks,
            bad_total=core.bad,
        )
        self.last_report = summary
        if core.jobs.failures and _worth_logging(core.jobs.failures):
            self.log.error("analytics job failed", error=core.jobs.last_error,
                           total=core.jobs.failures)  # fmt: skip
        self.log.info("engine stats", **summary)

    def health(self) -> Mapping[str, Any]:
        core = self.core
        report = self.last_report
        return {
            "pairs": len(self.pairs),
            "symbols": len(core.symbols),
            "ticks": core.ticks,
            "bad_entries": core.bad,
            "alerts_fired": core.alerts.fired,
            "alerts_suppressed": core.alerts.suppressed,
            "rules": len(core.alerts.rules),
            "rules_invalid": len(self.invalid_rules),
            "jobs_waiting": len(core.jobs) + self.offloader.busy,
            "job_failures": core.jobs.failures,
            "batches_fenced": self.writer.fenced,
            "job_worker_restarts": self.offloader.restarts,
            "lag_ms": report.get("lag_ms", 0),
            "latency_ms_p50": report.get("latency_ms_p50", 0.0),
            "latency_ms_p99": report.get("latency_ms_p99", 0.0),
            "entries_per_s": report.get("entries_per_s", 0.0),
            **self.counters,
        }

    async def close(self) -> None:
        """The reading connection (the other one belongs to the lifecycle)."""
        await self.read_client.aclose()


async def _cancelled(task: asyncio.Task[StreamBatch] | None) -> None:
    """Cancel an in-flight read (its entries were not applied: they will be read again)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def main(settings: Settings) -> int:
    if settings.shard == "auto" or settings.engines > 1:
        from spreadbus.engine.shards import ShardedEngine, service_name  # noqa: PLC0415

        return run_service(ShardedEngine, service_name(settings), settings)
    return run_service(QuantEngine, "engine", settings)
