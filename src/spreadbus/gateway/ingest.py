"""The gateway's single path from a source to Redis: parse, check, dedupe, shadow, batch, write.

Every source (Binance, sim, replay) feeds one :class:`Ingest` through the
:class:`~spreadbus.gateway.sink.TickSink` methods. Ticks wait in per-symbol buffers for at most
``max_delay_ms`` (or until ``max_batch`` are waiting), then :meth:`Ingest.run` writes them all
with one pipelined round trip. Whatever can be done per batch is done there, once per symbol
and flush rather than once per tick: latencies, per-symbol counts.

The ghost venue's ticks are made (vectorised) and written on a coarser beat, at most every
``ghost_every_ms`` (10 ms), riding along with whichever flush comes next: they are published
tens of milliseconds after their real twins anyway (``ghost_delay_ms``), and on every 2 ms
flush they added their own per-symbol work to each of the real ticks' writes.

If a write fails, whatever the cause (Redis unreachable, out of memory, an error reply), the
failed symbols' batches, ghosts included, are kept as they are and go out first in the next
flush, retried with capped backoff; failures are counted by kind and shown in
:meth:`Ingest.health`, and the flush loop never ends on one. The buffer holds up to
``max_buffer`` ticks meanwhile; what does not fit is counted as lost, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.bus.service import EventLog
from spreadbus.bus.ticks import SymbolBatch, TickWriter, WriteError, WriteResult, error_kind
from spreadbus.gateway.ackaudit import AckAudit, Written
from spreadbus.gateway.binance import (
    ControlReply,
    FrameError,
    MarkPrice,
    Parsed,
    Skipped,
    parse_frame,
)
from spreadbus.gateway.funding import FundingBook
from spreadbus.gateway.ghost import GhostVenue
from spreadbus.gateway.latency import RollingLatency, SymbolLatency

GapListener = Callable[[str, int, int], None]  # symbol, first missing id, last missing id


# A trade time this far past the receive time, or past 2100-01-01, is not a real trade.
MAX_AHEAD_MS: Final = 600_000
LATEST_TRADE_MS: Final = 4_102_444_800_000


def implausible_time(trade_ms: int, recv_ts: float) -> bool:
    """Is a trade time impossible: past the year 2100, or more than :data:`MAX_AHEAD_MS` after
    it was received (``recv_ts`` in seconds; 0 when unknown)?"""
    return trade_ms > LATEST_TRADE_MS or (recv_ts > 0 and trade_ms > recv_ts * 1000 + MAX_AHEAD_MS)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    max_delay_ms: float = 2.0  # a tick waits at most this long before its batch is written
    min_delay_ms: float = 0.5  # ... and at least this long, so batches are not single ticks
    max_batch: int = 20_000  # ... or until this many ticks are waiting
    max_buffer: int = 500_000  # bound on ticks held while Redis is unreachable
    retention_ms: int = 300_000  # stream trimming (MINID ~)
    trim_every_ms: int = 1_000  # a symbol's streams are trimmed at most this often
    track_gaps: bool = True  # trade ids are consecutive per symbol (Binance ids)
    retry_first_s: float = 0.1  # first wait after a failed write, doubled on each failure ...
    retry_max_s: float = 2.0  # ... up to this
    # ghost ticks are shadowed (vectorised) and written at most this often, riding along with
    # whichever flush comes next; a ghost is published up to this much after its due time
    ghost_every_ms: float = 10.0


class Ingest:
    def __init__(
        self,
        writer: TickWriter,
        ghost: GhostVenue,
        log: EventLog,
        config: IngestConfig,
        symbols: set[str] | None = None,
    ) -> None:
        self.writer = writer
        self.ghost = ghost
        self.log = log
        self.config = config
        self.symbols = symbols  # None: accept every symbol
        self.counters: Counter[str] = Counter()
        self.per_symbol: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.last_seen: dict[str, tuple[int, int]] = {}  # symbol -> (trade time, trade id)
        self.latency: dict[str, SymbolLatency] = defaultdict(SymbolLatency)
        self.flush_delay = RollingLatency(4096)
        self.last_tick: dict[str, Tick] = {}
        self.last_ghost: dict[str, Tick] = {}
        self.funding = FundingBook()  # markPrice updates: mark, index, funding per symbol
        self.on_gap: GapListener | None = None
        self._pending: dict[str, list[Tick]] = defaultdict(list)  # fresh, not yet written
        self._unshadowed: list[Tick] = []  # written, waiting for the ghost venue's next beat
        self._ghosts_at = 0.0  # epoch ms of the ghost venue's last beat
        self._retry: dict[str, SymbolBatch] = {}  # batches of a failed write, ghosts included
        # ticks of kept batches whose failed write may still have reached Redis (its reply was
        # lost): the retry finds those as duplicates, and they count as published
        self._unsure = 0
        self._held: dict[str, list[Tick]] = {}  # symbols waiting for a gap back-fill
        self._trimmed_at: dict[str, float] = {}  # symbol -> wall-clock ms of its last trim
        self._buffered = 0
        self._first_pending_at = 0.0
        self.notices: dict[str, str] = {}  # standing warnings shown in health, by name
        # what Redis acknowledged lately, to find the writes a failover lost (ackaudit.py)
        self.audit = AckAudit()
        self._acked_before_outage: dict[str, list[Written]] | None = None
        self._audits: set[asyncio.Task[None]] = set()
        self.write_errors: Counter[str] = Counter()  # failed writes by kind (error_kind)
        self._failing_since_ms: float | None = None  # first failure of the current outage
        self._last_write_error = ""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    # ---- TickSink -------------------------------------------------------------------------
    def on_frame(self, frame: bytes | str, recv_ts: float, source: str) -> Parsed | None:
        self.counters["frames"] += 1
        try:
            parsed = parse_frame(frame, recv_ts, source)
        except FrameError as exc:
            self.on_malformed(exc.reason, str(exc))
            return None
        if isinstance(parsed, Tick):
            self._accept(parsed)
        elif isinstance(parsed, MarkPrice):
            self.counters["mark_prices"] += 1
            self.funding.on_mark(parsed)
        elif isinstance(parsed, Skipped):
            self.counters["skipped"] += 1
        elif isinstance(parsed, ControlReply) and parsed.is_error:
            self.counters["error_replies"] += 1
            self.log.warning("error reply", code=parsed.code, msg=parsed.msg, id=parsed.id)
        return parsed

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        self.counters["frames"] += len(ticks)
        for tick in ticks:
            self._accept(tick)

    def on_malformed(self, reason: str, detail: str) -> None:
        self.malformed[reason] += 1
        self.counters["malformed"] += 1
        total = self.malformed[reason]
        if total <= 5 or total & (total - 1) == 0:  # first few, then at powers of two
            self.log.warning("malformed input", reason=reason, detail=detail[:200], total=total)

    def notice(self, name: str, message: str) -> None:
        """A condition the user must know about (e.g. a replay older than the bus): logged
        now as an error, and kept in health as ``notice_<name>``."""
        self.notices[name] = message
        self.log.error(message, notice=name)

    async def wait_for_room(self) -> None:
        await asyncio.sleep(0)  # always a turn for the flusher, even when there is room
        await self._room.wait()

    # ---- accepting ------------------------------------------------------------------------
    def _accept(self, tick: Tick) -> None:
        symbol = tick.symbol
        if self.symbols is not None and symbol not in self.symbols:
            self.counters["unsubscribed"] += 1
            return
        if implausible_time(tick.trade_ts, tick.recv_ts):
            # accepted, it would become the symbol's last trade and every real trade after it
            # would look like a duplicate, in the stream too (found by fuzzing)
            self.on_malformed(
                "implausible_time", f"{symbol} trade {tick.trade_id} at {tick.trade_ts}"
            )
            return
        key = (tick.trade_ts, tick.trade_id)
        last = self.last_seen.get(symbol)
        if last is not None:
            # a trade id at or below the last one is no new trade even with a later time:
            # e.g. the sim of a gateway that took these symbols over from another one
            if key <= last or tick.trade_id <= last[1]:
                self.counters["duplicates"] += 1  # e.g. two overlapping connections
                return
            if self.config.track_gaps and tick.trade_id > last[1] + 1:
                self._gap(symbol, last[1] + 1, tick.trade_id - 1)
        self.last_seen[symbol] = key
        self.counters["ticks"] += 1
        held = self._held.get(symbol)
        if held is not None:
            held.append(tick)
            return
        self._enqueue(tick)

    def _enqueue(self, tick: Tick) -> None:
        if self._buffered >= self.config.max_buffer:
            self.counters["lost"] += 1
            if self.counters["lost"] & (self.counters["lost"] - 1) == 0:
                self.log.error("buffer full, ticks lost", lost=self.counters["lost"])
            return
        if self._buffered == 0:
            self._first_pending_at = time.monotonic()
            self._wake.set()
        self._pending[tick.symbol].append(tick)
        self._buffered += 1
        if self._buffered >= self.config.max_batch:
            self._wake.set()
        if self._buffered >= self.config.max_buffer // 2:
            self._room.clear()  # sources that can wait, wait

    def _gap(self, symbol: str, first: int, last: int) -> None:
        missed = last - first + 1
        self.counters["gaps"] += 1
        self.counters["missed"] += missed
        self.log.warning("trade id gap", symbol=symbol, first=first, last=last, missed=missed)
        if self.on_gap is not None and symbol not in self._held:
            self._held[symbol] = []  # hold later ticks so the stream stays in id order
            self.on_gap(symbol, first, last)

    def fill_gap(self, symbol: str, ticks: Sequence[Tick]) -> None:
        """Back-filled ticks of a gap (possibly none, if the fill failed): publish them in
        order, then release the live ticks that were held behind the gap."""
        held = self._held.pop(symbol, [])
        filled = sorted((t for t in ticks if t.symbol == symbol), key=lambda t: t.trade_id)
        first_live = held[0].trade_id if held else None
        for tick in filled:
            if first_live is None or tick.trade_id < first_live:
                self._enqueue(tick)
                self.counters["backfilled"] += 1
        for tick in held:
            self._enqueue(tick)

    # ---- writing --------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._buffered

    def _take(self, now_ms: float) -> dict[str, SymbolBatch]:
        """Everything to write now: a failed write's batches first, then the fresh ticks of
        each symbol (counted and timed here, per symbol), then, on the ghost venue's beat, the
        due ghosts."""
        batches, self._retry = self._retry, {}
        fresh: list[Tick] = []
        for symbol, ticks in self._pending.items():
            if not ticks:
                continue
            self.per_symbol[symbol] += len(ticks)
            self.latency[symbol].add_ticks(ticks)
            self.last_tick[symbol] = ticks[-1]
            fresh += ticks
            batch = batches.get(symbol)
            if batch is None:
                batches[symbol] = SymbolBatch(ticks, [])
            else:
                batch.ticks.extend(ticks)
        self._unshadowed += fresh
        self._pending = defaultdict(list)
        self._buffered = 0
        ghosts_at = self._ghosts_due_at()
        if ghosts_at is not None and ghosts_at <= now_ms:
            self._ghosts_at = now_ms
            self.ghost.shadow_many(self._unshadowed)  # one vectorised call for every symbol
            self._unshadowed = []
            for ghost in self.ghost.due(now_ms):
                batch = batches.get(ghost.symbol)
                if batch is None:
                    batch = batches[ghost.symbol] = SymbolBatch([], [])
                batch.ghosts.append(ghost)
        # Trimming costs Redis a few microseconds per stream and call, and MINID ~ only frees
        # whole nodes anyway: once a second per symbol is plenty for a 5-minute retention.
        for symbol, batch in batches.items():
            if now_ms - self._trimmed_at.get(symbol, 0.0) >= self.config.trim_every_ms:
                self._trimmed_at[symbol] = now_ms
                batch.ghost_cut_ms = int(now_ms) - self.config.retention_ms
                if batch.ticks:
                    batch.cut_ms = batch.ticks[-1].trade_ts - self.config.retention_ms
        return batches

    def _ghosts_due_at(self) -> float | None:
        """When the ghost venue's next beat is due (epoch ms); None while it has nothing to
        do. A real tick's ghost is due no earlier than the tick was received."""
        first = self.ghost.next_due_ms()
        if self._unshadowed:
            received = self._unshadowed[0].recv_ts
            first = received if first is None else min(first, received)
        if first is None:
            return None
        return max(first, self._ghosts_at + self.config.ghost_every_ms)

    @property
    def ghosts_pending(self) -> int:
        """Ghost ticks not yet written: scheduled, or still to be made."""
        return len(self.ghost) + len(self._unshadowed)

    def _keep(self, batches: dict[str, SymbolBatch]) -> None:
        """A failed write: its batches, ghosts included, go out first in the next flush."""
        for symbol, batch in batches.items():
            self._retry[symbol] = batch
            self._buffered += len(batch.ticks)
        self._unsure = sum(len(batch.ticks) for batch in self._retry.values())

    def _next_deadline(self) -> float:
        """Seconds until the flusher has something to do."""
        if self._buffered:
            age = time.monotonic() - self._first_pending_at
            return max(0.0, self.config.max_delay_ms / 1000 - age)
        due_ms = self._ghosts_due_at()
        if due_ms is not None:
            return max(0.0, (due_ms - epoch_ms()) / 1000)
        return 0.25

    async def _linger(self) -> None:
        """Let a batch grow while the sources are busy, and no longer.

        A batch goes out as soon as a turn of the event loop brings no new tick (the sources
        are idle: waiting only adds latency), once it is ``max_delay_ms`` old, or once it
        holds ``max_batch`` ticks; but not before ``min_delay_ms``, so that a trickle of ticks
        does not become one Redis call per tick. While a write is in flight the next batch
        builds up by itself, so under load batches grow and calls stay few."""
        start = self._first_pending_at
        earliest = start + self.config.min_delay_ms / 1000
        latest = start + self.config.max_delay_ms / 1000
        while self._buffered and self._buffered < self.config.max_batch:
            now = time.monotonic()
            if now >= latest:
                return
            if now < earliest:
                await asyncio.sleep(earliest - now)
                continue
            before = self._buffered
            await asyncio.sleep(0)
            if self._buffered == before:
                return

    async def flush(self) -> WriteResult | None:
        """Write everything waiting (and every ghost that is due) now."""
        now = epoch_ms()
        batches = self._take(now)
        if not batches:
            return None
        oldest = min((b.ticks[0].recv_ts for b in batches.values() if b.ticks), default=None)
        try:
            result = await self.writer.write(batches)
        except WriteError as exc:
            # the symbols that did go through are written exactly once: count them, keep the rest
            went = {s: b for s, b in batches.items() if s not in exc.failed}
            self._count(exc.result, went)
            self.audit.acked(went)
            self._keep({s: b for s, b in batches.items() if s in exc.failed})
            raise
        except BaseException:
            self._keep(batches)  # cancelled or a bug: nothing is known to be written
            raise
        finally:
            if self._buffered < self.config.max_buffer // 2:
                self._room.set()
        if oldest is not None:
            self.flush_delay.add(epoch_ms() - oldest)
        self._count(result, batches, settles_unsure=True)
        self.audit.acked(batches)
        self.counters["flushes"] += 1
        return result

    def _count(
        self, result: WriteResult, written: dict[str, SymbolBatch], settles_unsure: bool = False
    ) -> None:
        """Count a write. ``settles_unsure``: it carried every kept batch, so duplicates up to
        the number of their ticks were written by an attempt whose reply was lost."""
        confirmed = min(result.duplicates, self._unsure) if settles_unsure else 0
        if settles_unsure:
            self._unsure = 0
        if confirmed:
            self.counters["written_before_lost_reply"] += confirmed
        self.counters["published"] += result.added + confirmed
        self.counters["duplicates"] += result.duplicates - confirmed
        self.counters["ghost_published"] += result.ghosts
        for name in ("refused_samples", "repairs", "function_reloads"):
            if getattr(result, name):
                self.counters[f"write_{name}"] += getattr(result, name)
        if result.refused_samples:
            self.log.error("series refused samples", refused=result.refused_samples)
        for batch in written.values():
            if batch.ghosts:
                self.last_ghost[batch.ghosts[-1].symbol] = batch.ghosts[-1]

    def _write_failed(self, exc: BaseException) -> None:
        kind = exc.kind if isinstance(exc, WriteError) else error_kind(exc)
        self.write_errors[kind] += 1
        self.counters["write_errors"] += 1
        self._last_write_error = str(exc)[:300]
        total = self.counters["write_errors"]
        if self._failing_since_ms is None:
            self._failing_since_ms = epoch_ms()
            self._acked_before_outage = self.audit.take()
            self.log.error("redis write failed; batch kept, retrying", kind=kind, error=str(exc))
        elif total & (total - 1) == 0:  # then at powers of two
            self.log.error("redis writes still failing", kind=kind, error=str(exc), total=total)

    def _write_resumed(self) -> None:
        if self._failing_since_ms is None:
            return
        self.log.warning(
            "redis writes resumed",
            outage_s=round((epoch_ms() - self._failing_since_ms) / 1000, 2),
            failures=self.counters["write_errors"],
            lost=self.counters["lost"],
        )
        self._failing_since_ms = None
        acked, self._acked_before_outage = self._acked_before_outage, None
        if acked:
            self._audit(acked)

    def _audit(self, acked: dict[str, list[Written]]) -> None:
        task = asyncio.create_task(self._audit_outage(acked))
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

    async def _audit_outage(self, acked: dict[str, list[Written]]) -> None:
        """After an outage (or a failover the cluster client rode out): did Redis lose writes
        it had acknowledged (a primary that died before its replica had them)? Counted as
        ``acked_lost``, and a notice (health, and an error in the log)."""
        try:
            lost = await AckAudit.missing(self.writer.client, acked)
        except Exception as exc:  # the audit never stops the ingest; it says it could not run
            self.counters["acked_audit_errors"] += 1
            self.log.warning("acknowledged-write audit failed", error=repr(exc))
            return
        self.counters["acked_audits"] += 1
        if lost:
            self.counters["acked_lost"] += sum(lost.values())
            self.notice(
                "acked_lost",
                f"{self.counters['acked_lost']} acknowledged ticks lost by Redis since start "
                f"(a failover before replication); last outage: {lost}",
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Flush loop: until ``stop``, then one last flush of everything (ghosts included).

        No failed write ends it: whatever :meth:`flush` raises (short of cancellation) is
        counted, the batch stays queued, and the loop waits (capped backoff) and tries again."""
        backoff = self.config.retry_first_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_deadline())
            self._wake.clear()
            if self._buffered:
                await self._linger()
            try:
                await self.flush()
            except Exception as exc:  # every failure is counted and retried
                self._write_failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, self.config.retry_max_s)
                continue
            self._write_resumed()
            if self.audit.moved(self.writer.client):  # a failover the client rode out alone
                self._audit(self.audit.take())
            backoff = self.config.retry_first_s
        await self.drain()

    async def drain(self, timeout: float = 5.0) -> None:
        """Write what is left, releasing held symbols and undelivered ghosts."""
        for symbol in list(self._held):
            self.fill_gap(symbol, [])
        deadline = time.monotonic() + timeout
        while (self._buffered or self.ghosts_pending) and time.monotonic() < deadline:
            due_ms = self._ghosts_due_at()
            if due_ms is not None and not self._buffered:
                wait = (due_ms - epoch_ms()) / 1000
                await asyncio.sleep(min(max(wait, 0.0), 0.5))
            try:
                await self.flush()
            except Exception as exc:  # counted; tried again until the deadline
                self._write_failed(exc)
                await asyncio.sleep(0.2)
        if self._buffered:
            self.counters["lost"] += self._buffered
            self.log.error("stopped with unwritten ticks", lost=self._buffered)

    def health(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.counters)
        out["buffered"] = self._buffered
        out["ghost_pending"] = self.ghosts_pending
        if self.malformed:
            out["malformed_by_reason"] = dict(self.malformed)
        for name, message in self.notices.items():
            out[f"notice_{name}"] = message
        if self.write_errors:
            out["write_errors_by_kind"] = dict(self.write_errors)
            out["write_last_error"] = self._last_write_error
        if self._failing_since_ms is not None:  # writes are failing right now
            out["write_failing_s"] = round((epoch_ms() - self._failing_since_ms) / 1000, 1)
        summary = self.flush_delay.summary()
        if summary is not None:
            out["batch_latency_p50_ms"] = round(summary.p50, 3)
            out["batch_latency_p99_ms"] = round(summary.p99, 3)
        return out
