"""``spreadbus archivist``: tick streams and TimeSeries to Parquet, every tick exactly once.

Three loops share one process:

- the reader XREADs every tick stream (real and ghost) continuously from its cursor, appends
  each batch to the durable spool and only then advances the cursor; a stream trimmed by
  Redis after that point has nothing left to lose;
- every ``archive_interval`` (and once more on a clean stop) the flush seals the spool, adds
  the closed candles (new ones, and recent ones a late trade changed) and settled analytics
  from the TimeSeries, writes one Parquet batch and commits the manifest
  (:mod:`spreadbus.archivist.writer`), then compacts small files;
- a watcher re-reads ``config:pairs`` on ``channel:config`` messages and every 10 s.

On start, the archive is brought back to its last commit and the read cursors are derived
from disk: the manifest's committed ids, raised to the last id in the spool. A crash at any
point therefore neither skips nor repeats an entry, as long as the Archivist is back before
Redis trims what it had not spooled yet (it counts and logs it when that happened: ``gaps``,
``ticks_lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Mapping
from typing import Any, Final

from spreadbus.archivist import sources
from spreadbus.archivist.atomic import make_dirs
from spreadbus.archivist.compaction import compact_archive
from spreadbus.archivist.convert import (
    ANALYTICS_METRICS,
    CandleRow,
    Sample,
    revised_candles,
    settle_analytics,
    warm_up,
)
from spreadbus.archivist.layout import archive_root, date_of_ms, spool_dir
from spreadbus.archivist.manifest import analytics_key
from spreadbus.archivist.spool import ZERO_ID, Entry, Spool, StreamId, format_id, parse_id
from spreadbus.archivist.writer import ArchiveWriter
from spreadbus.bus import keys
from spreadbus.bus.configstore import ConfigWatcher
from spreadbus.bus.connect import AsyncRedis, is_cluster
from spreadbus.bus.errors import disk_problem
from spreadbus.bus.health import HealthState, State
from spreadbus.bus.service import REDIS_ERRORS, EventLog, run_service
from spreadbus.config import Settings, symbols_of

READ_COUNT: Final = 2000  # entries per stream per XREAD
BLOCK_MS: Final = 250  # XREAD block; also how quickly the reader notices a stop
PAIRS_REFRESH_S: Final = 10.0
DRAIN_S: Final = 5.0  # on a clean stop, read what is left for at most this long
LOCK_NAME: Final = "lock"
GAP_CHECK_LIMIT: Final = 10_000  # unread entries beyond which the trimming check waits
# Late trades (e.g. a REST backfill after a reconnect) change minutes already closed:
# candles this recent are re-read and written again when they changed (newest row wins).
CANDLE_REVISION_MS: Final = 15 * 60_000


class ArchivistError(RuntimeError):
    """The Archivist cannot run (e.g. another one holds the archive)."""


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Archivist:
    name = "archivist"

    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        self.settings = settings
        self.client = client
        self.log = log
        self.root = archive_root(settings.data_dir)
        self.spool = Spool(spool_dir(self.root))
        self.writer = ArchiveWriter(self.root)
        self.pairs: tuple[str, ...] = settings.pairs
        self.cursors: dict[str, StreamId] = {}
        self.ordinals: dict[str, int] = {}  # stream -> position of its cursor entry, if known
        self.counters: dict[str, int] = {
            "ticks_spooled": 0,
            "ticks_archived": 0,
            "ticks_rejected": 0,
            "candles_archived": 0,
            "analytics_archived": 0,
            "files_written": 0,
            "bytes_written": 0,
            "batches": 0,
            "compactions": 0,
            "gaps": 0,
            "ticks_lost": 0,
            "errors": 0,
            "last_write_ms": 0,
        }
        self.health_state = HealthState()
        self.config_watcher = ConfigWatcher(client, self._refresh_pairs, PAIRS_REFRESH_S)
        self._halt = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()  # held by a read round, and by the gap check
        self._lock_fd: int | None = None
        self._opened = False
        # symbol -> closed candles of the revision window, as last archived / last fetched
        self._recent_candles: dict[str, dict[int, CandleRow]] = {}
        self._candles_seen: dict[str, dict[int, CandleRow]] = {}

    # -- what to read -------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return symbols_of(self.pairs)

    def streams(self) -> list[str]:
        return [key for s in self.symbols for key in (keys.tick_stream(s), keys.ghost_stream(s))]

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self._open)
        with contextlib.suppress(*REDIS_ERRORS):
            await self._refresh_pairs()
        await self._check_gaps()  # before reading: was anything trimmed while we were away?
        reader = self.health_state.spawn("reader", self._read_loop(stop))
        watcher = self.health_state.spawn("config watcher", self.config_watcher.run(stop))
        clean = False
        try:
            await self._flush(compact=True)  # whatever a previous run left in the spool
            while not stop.is_set():
                await _sleep_unless(stop, self.settings.archive_interval)
                if not stop.is_set():
                    await self._flush(compact=True)
            clean = True
        finally:
            self.health_state.tasks.clear()  # stopping: their end is no failure
            if not clean:
                self._halt.set()
            await asyncio.gather(reader, return_exceptions=True)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await self._flush(compact=False)

    def _open(self) -> None:
        state = spool_dir(self.root)
        make_dirs(state)
        fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArchivistError(f"another archivist is writing {self.root}") from None
        self._lock_fd = fd
        warm_up()
        report = self.writer.recover()
        spooled = self.spool.recover(self.writer.manifest.spool_seq)
        manifest = self.writer.manifest
        self.cursors = dict(manifest.streams)
        self.ordinals = dict(manifest.ordinals)
        for stream, (last, ordinal) in spooled.items():  # the spool is ahead of the manifest
            self.cursors[stream] = max(last, self.cursors.get(stream, ZERO_ID))
            if ordinal is None:
                self.ordinals.pop(stream, None)
            else:
                self.ordinals[stream] = ordinal
        self._opened = True
        self.log.info(
            "archive opened",
            root=str(self.root),
            batch=self.writer.manifest.batch,
            spooled_pending=self.spool.pending,
            undone_files=report.undone_files,
            temp_removed=report.temp_removed,
        )

    def health(self) -> Mapping[str, Any]:
        return {
            **self.counters,
            "lag": self.spool.pending,  # ticks spooled but not yet in Parquet
            "symbols": len(self.symbols),
            "batch": self.writer.manifest.batch,
        }

    async def close(self) -> None:
        self.spool.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- reading --------------------------------------------------------------------------

    async def _read_loop(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        drain_deadline: float | None = None
        while not self._halt.is_set():
            stopping = stop.is_set()
            if stopping:
                now = time.monotonic()
                drain_deadline = drain_deadline or now + DRAIN_S
                if now > drain_deadline:
                    return
            try:
                async with self._read_lock:
                    got = await self._read_once(None if stopping else BLOCK_MS)
            except REDIS_ERRORS as exc:
                if stopping:
                    return
                self.counters["errors"] += 1
                self.health_state.set("redis", "degraded", f"stream read failed: {exc!r}"[:300])
                self.log.warning("stream read failed", error=repr(exc), retry_s=backoff)
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 1.0)  # back within a second of Redis
                continue
            self.health_state.clear("redis")
            backoff = 0.2
            if stopping and got == 0:
                return

    async def _read_once(self, block_ms: int | None) -> int:
        streams = self.streams()
        if not streams:
            await asyncio.sleep((block_ms or 0) / 1000)
            return 0
        if is_cluster(self.client):
            # XREAD over several keys must stay in one slot: one call per symbol, no blocking.
            entries: list[Entry] = []
            for i in range(0, len(streams), 2):
                group = {s: format_id(self.cursors.get(s, ZERO_ID)) for s in streams[i : i + 2]}
                entries += await sources.read_entries(self.client, group, READ_COUNT, None)
            if not entries and block_ms:
                await asyncio.sleep(min(block_ms, 100) / 1000)
        else:
            wanted = {s: format_id(self.cursors.get(s, ZERO_ID)) for s in streams}
            entries = await sources.read_entries(self.client, wanted, READ_COUNT, block_ms)
        if not entries:
            return 0
        ordinals: list[int | None] = []
        known = dict(self.ordinals)
        for stream, _, _ in entries:
            position = known.get(stream)
            if position is not None:
                position = known[stream] = position + 1
            ordinals.append(position)
        try:
            await asyncio.to_thread(self.spool.append, entries, ordinals)
        except OSError as exc:
            # Cursor not advanced: the same entries are read again on the next round, when
            # there is space again (a full disk is a disk problem, not a Redis one).
            self.counters["errors"] += 1
            self._disk_failed("spool", exc)
            await asyncio.sleep(1.0)
            return 0
        self._disk_ok("spool")
        moved: dict[str, str] = {}
        for stream, entry_id, _ in entries:
            moved[stream] = entry_id  # entries of one stream arrive in id order
        for stream, entry_id in moved.items():
            self.cursors[stream] = parse_id(entry_id)
        self.ordinals = known
        self.counters["ticks_spooled"] += len(entries)
        with contextlib.suppress(*REDIS_ERRORS):
            await sources.save_cursor(self.client, moved)
        return len(entries)

    async def _check_gaps(self) -> None:
        """Warn when Redis trimmed entries this Archivist never spooled (it was down, or fell
        behind, for longer than the streams' retention).

        Exact, by counting: every spooled entry carries its ordinal (its position in the
        stream). With the reader paused, the cursor's ordinal must equal the entries Redis ever
        added minus those still waiting after the cursor; any shortfall was deleted unread. A
        stream whose ordinal is not known yet (first sight) gets it here, without a report.
        """
        async with self._read_lock:
            for stream in self.streams():
                cursor = self.cursors.get(stream, ZERO_ID)
                try:
                    position = await sources.stream_position(
                        self.client, stream, cursor, GAP_CHECK_LIMIT
                    )
                except REDIS_ERRORS:
                    return
                if position is None:
                    continue
                added, unread = position
                expected = added - unread
                known = self.ordinals.get(stream)
                self.ordinals[stream] = expected
                if known is None or expected <= known:
                    continue  # first sight; or the stream was recreated: start counting again
                self.counters["gaps"] += 1
                self.counters["ticks_lost"] += expected - known
                self.log.warning(
                    "ticks lost to stream trimming before they were spooled",
                    stream=stream,
                    lost=expected - known,
                    after=format_id(cursor),
                )

    # -- config ---------------------------------------------------------------------------

    async def _refresh_pairs(self) -> None:
        pairs = await sources.configured_pairs(self.client, self.settings.pairs)
        if pairs != self.pairs:
            self.log.info("pairs changed", pairs=",".join(pairs))
            self.pairs = pairs

    # -- disk trouble ---------------------------------------------------------------------

    def _disk_failed(self, step: str, exc: OSError) -> None:
        """Report a disk problem once per episode (health says it until the step succeeds).
        A spool that cannot be written stops the reading (failing); Parquet writes or a
        compaction that fail leave the ticks safe in the spool, only late (degraded)."""
        problem = disk_problem(exc)
        first = f"disk:{step}" not in self.health_state.conditions
        state: State = "failing" if step == "spool" else "degraded"
        self.health_state.set(f"disk:{step}", state, f"{step}: {problem}")
        if first:
            self.log.error(f"{step} write failed", problem=problem, error=repr(exc))

    def _disk_ok(self, step: str) -> None:
        if f"disk:{step}" in self.health_state.conditions:
            self.health_state.clear(f"disk:{step}")
            self.log.info(f"{step} writable again")

    # -- writing --------------------------------------------------------------------------

    async def _fetch_timeseries(
        self,
    ) -> tuple[dict[str, list[CandleRow]] | None, dict[str, dict[str, list[Sample]]] | None]:
        manifest = self.writer.manifest
        candles: dict[str, list[CandleRow]] | None = {}
        analytics: dict[str, dict[str, list[Sample]]] | None = {}
        self._candles_seen = {}
        try:
            for symbol in self.symbols:
                cursor = manifest.candles.get(symbol, -1)
                since = max(cursor - CANDLE_REVISION_MS, -1)
                rows = await sources.closed_candles(self.client, symbol, since)
                changed = revised_candles(rows, cursor, self._recent_candles.get(symbol))
                self._candles_seen[symbol] = {r[0]: r for r in rows}  # kept once written
                if changed and candles is not None:
                    candles[symbol] = changed
        except REDIS_ERRORS as exc:
            self.log.warning("candle read failed", error=repr(exc))
            candles = None
        try:
            for pair in self.pairs:
                after = {
                    m: manifest.analytics.get(analytics_key(pair, m), -1) for m in ANALYTICS_METRICS
                }
                raw = await sources.analytics_samples(self.client, pair, ANALYTICS_METRICS, after)
                settled = settle_analytics(raw)
                if settled and analytics is not None:
                    analytics[pair] = settled
        except REDIS_ERRORS as exc:
            self.log.warning("analytics read failed", error=repr(exc))
            analytics = None
        return candles, analytics

    async def _flush(self, compact: bool) -> None:
        if not self._opened:
            return
        async with self._flush_lock:
            segments = await asyncio.to_thread(self.spool.seal)
            candles, analytics = await self._fetch_timeseries()
            started = time.perf_counter()
            try:
                result = await asyncio.to_thread(
                    self.writer.write_batch, self.spool, segments, candles, analytics
                )
            except OSError as exc:  # nothing committed: the spool keeps it for the next flush
                self.counters["errors"] += 1
                self._disk_failed("archive", exc)
                return
            except Exception as exc:
                self.counters["errors"] += 1
                self.log.error("archive write failed", error=repr(exc), exc_info=exc)
                return
            self._disk_ok("archive")
            if candles is not None:
                self._recent_candles.update(self._candles_seen)
            if result.batch:
                self.counters["ticks_archived"] += result.ticks
                self.counters["ticks_rejected"] += result.rejected
                self.counters["candles_archived"] += result.candles
                self.counters["analytics_archived"] += result.analytics
                self.counters["files_written"] += len(result.files)
                self.counters["bytes_written"] += result.bytes
                self.counters["batches"] += 1
                self.counters["last_write_ms"] = int(time.time() * 1000)
                if result.rejected:
                    self.log.warning("entries that are not ticks skipped", count=result.rejected)
                if result.files:
                    self.log.info(
                        "archived",
                        batch=result.batch,
                        ticks=result.ticks,
                        candles=result.candles,
                        analytics=result.analytics,
                        files=len(result.files),
                        ms=round((time.perf_counter() - started) * 1000, 1),
                    )
            if compact:
                await self._compact()
            await self._check_gaps()

    async def _compact(self) -> None:
        today = date_of_ms(int(time.time() * 1000))
        try:
            result = await asyncio.to_thread(
                compact_archive, self.root, self.settings.archive_compact_parts, today
            )
        except OSError as exc:  # the parts stay as they are; merged on a later round
            self.counters["errors"] += 1
            self._disk_failed("compaction", exc)
            return
        except Exception as exc:
            self.counters["errors"] += 1
            self.log.error("compaction failed", error=repr(exc), exc_info=exc)
            return
        self._disk_ok("compaction")
        if result.partitions:
            self.counters["compactions"] += result.partitions
            self.log.info(
                "compacted",
                partitions=result.partitions,
                files_before=result.files_before,
                rows=result.rows,
            )


def create(settings: Settings, client: AsyncRedis, log: EventLog) -> Archivist:
    return Archivist(settings, client, log)


def main(settings: Settings) -> int:
    return run_service(create, "archivist", settings)
