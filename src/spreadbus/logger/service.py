"""``spreadbus logger``: the CentralLogger process.

It reads ``stream:logs`` with a consumer group and hands every event to the file sink (and, for
ERROR and above, to the optional webhook forwarder). An event is acknowledged only once the file
holding it has been fsynced, and every record carries its stream id (``stream_id``): a logger
killed at any point reads its unacknowledged events again when it is back and skips those the
file already holds (the newest ``stream_id`` on disk). Nothing published while it was away is
lost, nothing is written twice. ``channel:logs`` stays for live tails; the logger does not need
it.

Redis going away is retried at once, then with capped backoff, logged once per outage. A full
(or failing) disk is reported as such: the service turns ``failing`` with the error as reason,
acknowledges nothing, retries every second and carries on from where the file ends when there
is space again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any, Final

import redis.exceptions

from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.health import HealthState
from spreadbus.bus.service import REDIS_ERRORS, EventLog, run_service
from spreadbus.bus.streamid import StreamId
from spreadbus.bus.streamid import parse as parse_stream_id
from spreadbus.config import Settings
from spreadbus.logger.record import to_record
from spreadbus.logger.sink import RotatingJsonlSink, last_stream_id, log_dir
from spreadbus.logger.webhook import WebhookForwarder

# How long one read waits for events: also how late a due flush or a stop can be noticed.
POLL_INTERVAL = 0.25
READ_COUNT: Final = 500
CONSUMER: Final = "central"  # one CentralLogger per bus
DISK_RETRY_S: Final = 1.0
ACK_EVERY_S: Final = 1.0  # fsync + XACK at most this often: bounds what a restart re-reads
RECONNECT_BACKOFF_START = 0.2
RECONNECT_BACKOFF_CAP = 1.0  # back within a second of Redis: the chaos suite's 5 s budget


def next_retry_delay(delay: float) -> float:
    """0 (the first retry is immediate), 0.2, 0.4, 0.8, then every second.

    Immediate first: a connection killed while Redis stays up (CLIENT KILL, a proxy restart)
    should wait no longer than it has to; a real outage gets the capped backoff.
    """
    return min(max(delay * 2, RECONNECT_BACKOFF_START), RECONNECT_BACKOFF_CAP)


class CentralLogger:
    """``stream:logs`` (consumer group) -> :class:`RotatingJsonlSink` (+ webhook)."""

    name = "logger"

    def __init__(
        self,
        settings: Settings,
        client: AsyncRedis,
        log: EventLog,
        *,
        forwarder: WebhookForwarder | None = None,
    ) -> None:
        self._client = client
        self._log = log
        self.sink = RotatingJsonlSink(
            log_dir(settings.data_dir),
            max_bytes=settings.log_max_bytes,
            backups=settings.log_backups,
        )
        if forwarder is None and settings.log_webhook_url:
            forwarder = WebhookForwarder(
                settings.log_webhook_url, rate=settings.log_webhook_rate, log=log
            )
        self.webhook = forwarder
        self.health_state = HealthState()
        self.malformed = 0
        self.duplicates = 0  # events read again after a restart that the file already held
        self.acked = 0
        self.disconnects = 0
        self.disk_errors = 0
        self.reading = False  # the group exists and the last read succeeded
        self.reconnected = 0
        self._last_written: StreamId = (0, 0)
        self._unacked: list[bytes] = []
        self._acked_at = 0.0
        self._cursor = "0"  # "0": our pending (unacknowledged) events first; then ">"
        self._outage_started: float | None = None
        self._disk_failed: str | None = None
        self._next_retry_delay = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        if self.webhook is not None:
            self.webhook.start()
        resume = True
        while not stop.is_set():
            try:
                if resume:
                    await asyncio.to_thread(self._resume_from_disk)
                    await self._ensure_group()
                    resume = False
                await self._read_once()
                await self._settle()
            except REDIS_ERRORS as exc:
                self.reading = False
                await self._on_connection_lost(exc, stop)
                continue
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # the stream or its group vanished (FLUSHALL, a fresh server): start again
                self._log.warning("log group missing; recreating it", error=str(exc))
                resume = True
                continue
            except OSError as exc:
                await self._on_disk_error(exc, stop)
                resume = True
                continue
            if self._disk_failed is not None:
                self._log.info("log disk writable again", error_was=self._disk_failed)
                self._disk_failed = None
                self.health_state.clear("disk")
            self._on_connected()

    # -- reading ------------------------------------------------------------------------

    def _resume_from_disk(self) -> None:
        """Reopen the file and learn the newest event it holds; re-read pending events."""
        self.sink.abandon()
        self.sink.open()
        found = last_stream_id(self.sink.directory)
        if found is not None:
            self._last_written = max(self._last_written, parse_stream_id(found))
        self._unacked.clear()
        self._cursor = "0"

    async def _ensure_group(self) -> None:
        try:
            # "0": a first logger writes everything the stream still holds
            await self._client.xgroup_create(keys.LOG_STREAM, keys.LOG_GROUP, "0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._cursor = "0"

    async def _read_once(self) -> None:
        pending = self._cursor != ">"
        reply: Any = await self._client.xreadgroup(
            keys.LOG_GROUP, CONSUMER, {keys.LOG_STREAM: self._cursor}, count=READ_COUNT,
            block=None if pending else int(POLL_INTERVAL * 1000),
        )  # fmt: skip
        entries: list[tuple[bytes, dict[bytes, bytes] | None]] = reply[0][1] if reply else []
        if pending:
            if not entries:
                self._cursor = ">"  # every pending event is handled: new ones from now on
                return
            last = entries[-1][0]
            self._cursor = last.decode() if isinstance(last, bytes) else str(last)
        self.reading = True
        for entry_id, fields in entries:
            self._handle(entry_id, fields)

    def _handle(self, entry_id: bytes, fields: Mapping[bytes, bytes] | None) -> None:
        self._unacked.append(entry_id)
        position = parse_stream_id(entry_id)
        if position <= self._last_written:
            self.duplicates += 1  # already on disk before a restart
            return
        if fields is None:  # trimmed while pending: nothing left to write
            return
        payload = fields.get(keys.LOG_STREAM_FIELD.encode(), b"")
        record, parsed = to_record(payload)
        if not parsed:
            self.malformed += 1
        record["stream_id"] = entry_id.decode()
        self.sink.write(record)
        self._last_written = position
        if self.webhook is not None:
            self.webhook.offer(record)

    async def _settle(self) -> None:
        """At most every :data:`ACK_EVERY_S`: fsync the file, then acknowledge what it holds.
        Events only skipped (already on disk) are acknowledged at once."""
        if not self._unacked:
            self.sink.sync_if_due()
            return
        if self.sink.dirty:
            if time.monotonic() - self._acked_at < ACK_EVERY_S:
                return
            self.sink.sync()
        await self._ack()
        self._acked_at = time.monotonic()

    async def _ack(self) -> None:
        """Acknowledge what the file holds durably (fsynced)."""
        ids, self._unacked = self._unacked, []
        try:
            await self._client.xack(keys.LOG_STREAM, keys.LOG_GROUP, *ids)
        except BaseException:
            self._unacked = ids + self._unacked
            raise
        self.acked += len(ids)

    # -- trouble --------------------------------------------------------------------------

    def _on_connected(self) -> None:
        self._next_retry_delay = 0.0
        if self._outage_started is not None:
            down_s = round(time.monotonic() - self._outage_started, 3)
            self._outage_started = None
            self.reconnected += 1
            self.health_state.clear("redis")
            self._log.info("reconnected", disconnects=self.disconnects, down_s=down_s)

    async def _on_connection_lost(self, exc: BaseException, stop: asyncio.Event) -> None:
        self.disconnects += 1
        self._cursor = "0"  # what was read but not acknowledged is read again
        delay = self._next_retry_delay
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self.health_state.set("redis", "degraded", f"redis connection lost: {exc}")
            self._log.warning("redis connection lost", error=str(exc), retry_in=delay)
        else:
            self._log.debug("redis still unreachable", error=str(exc), retry_in=delay)
        self._next_retry_delay = next_retry_delay(delay)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _on_disk_error(self, exc: OSError, stop: asyncio.Event) -> None:
        """A full or failing disk: nothing is acknowledged, so nothing is lost; retry."""
        self.disk_errors += 1
        self.reading = False
        self._unacked.clear()  # re-read from the pending list, deduplicated by the file
        reason = f"cannot write the log file: {exc.strerror or exc}"
        if self._disk_failed is None:
            self._disk_failed = reason
            self.health_state.set("disk", "failing", reason)
            self._log.error("log disk error", error=repr(exc), path=str(self.sink.path))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DISK_RETRY_S)

    # -- the service ----------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        """Kept for callers of the Pub/Sub era: the logger is reading its group."""
        return self.reading

    def health(self) -> Mapping[str, Any]:
        webhook = self.webhook
        return {
            "written": self.sink.written,
            "acked": self.acked,
            "duplicates_skipped": self.duplicates,
            "malformed": self.malformed,
            "rotated": self.sink.rotated,
            "reading": self.reading,
            "reconnected": self.reconnected,
            "disconnects": self.disconnects,
            "disk_errors": self.disk_errors,
            "webhook_sent": webhook.sent if webhook else 0,
            "webhook_failed": webhook.failed if webhook else 0,
            "webhook_dropped": webhook.dropped if webhook else 0,
            "webhook_queued": webhook.queued if webhook else 0,
        }

    async def close(self) -> None:
        try:
            if self.webhook is not None:
                await self.webhook.close()
        finally:
            with contextlib.suppress(OSError):
                self.sink.close()
            if self._unacked and not self.sink.dirty:
                with contextlib.suppress(*REDIS_ERRORS, redis.exceptions.ResponseError):
                    await asyncio.wait_for(self._ack(), 2.0)


def main(settings: Settings) -> int:
    return run_service(CentralLogger, "logger", settings)
