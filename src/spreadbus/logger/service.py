"""``spreadbus logger``: the CentralLogger process.

It subscribes to ``channel:logs`` and hands every message to the file sink (and, for ERROR and
above, to the optional webhook forwarder). Pub/Sub keeps nothing for a subscriber that is not
connected (see ``docs/logging.md``), so losing the subscription is the one thing this service
must never sit on: when the connection breaks it resubscribes at once, then with capped
backoff while Redis stays away, and logs the outage and the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.service import REDIS_ERRORS, EventLog, run_service
from spreadbus.config import Settings
from spreadbus.logger.record import to_record
from spreadbus.logger.sink import RotatingJsonlSink, log_dir
from spreadbus.logger.webhook import WebhookForwarder

# How long one read waits for a message: also how late a due flush or a stop can be noticed.
POLL_INTERVAL = 0.25
RECONNECT_BACKOFF_START = 0.2
RECONNECT_BACKOFF_CAP = 5.0


def next_retry_delay(delay: float) -> float:
    """0 (the first retry is immediate), 0.2, 0.4, ... up to 5 s.

    Immediate first: a connection killed while Redis stays up (CLIENT KILL, a proxy restart)
    should cost no more messages than it has to; a real outage gets the capped backoff.
    """
    return min(max(delay * 2, RECONNECT_BACKOFF_START), RECONNECT_BACKOFF_CAP)


class CentralLogger:
    """Pub/Sub listener -> :class:`RotatingJsonlSink` (+ :class:`WebhookForwarder`)."""

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
        self.malformed = 0
        self.subscribed = False
        self.subscriptions = 0  # subscribe confirmations from Redis: 1 + resubscriptions
        self.disconnects = 0
        self._outage_started: float | None = None
        self._next_retry_delay = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        self.sink.open()
        if self.webhook is not None:
            self.webhook.start()
        while not stop.is_set():
            try:
                await self._listen(stop)
            except REDIS_ERRORS as exc:
                await self._on_connection_lost(exc, stop)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Subscribe and write what arrives until ``stop``; Redis errors propagate."""
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(keys.CHANNEL_LOGS)
            while not stop.is_set():
                message = await pubsub.get_message(timeout=POLL_INTERVAL)
                if message is not None:
                    self._handle(message)
                self.sink.sync_if_due()
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py stub gap

    def _handle(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "subscribe":
            self._on_subscribed()
        elif kind == "message":
            record, parsed = to_record(message["data"])
            if not parsed:
                self.malformed += 1
            self.sink.write(record)
            if self.webhook is not None:
                self.webhook.offer(record)

    def _on_subscribed(self) -> None:
        # Counting Redis's own confirmations (not our subscribe calls) also catches a reconnect
        # that redis-py performed silently inside a read.
        self.subscribed = True
        self.subscriptions += 1
        self._next_retry_delay = 0.0
        if self.subscriptions == 1:
            self._log.info("subscribed", channel=keys.CHANNEL_LOGS)
            return
        fields: dict[str, Any] = {"channel": keys.CHANNEL_LOGS, "disconnects": self.disconnects}
        if self._outage_started is not None:
            fields["down_s"] = round(time.monotonic() - self._outage_started, 3)
        self._outage_started = None
        self._log.info("resubscribed", **fields)

    async def _on_connection_lost(self, exc: BaseException, stop: asyncio.Event) -> None:
        self.subscribed = False
        self.disconnects += 1
        delay = self._next_retry_delay
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self._log.warning("redis connection lost", error=str(exc), retry_in=delay)
        else:
            self._log.debug("redis still unreachable", error=str(exc), retry_in=delay)
        self._next_retry_delay = next_retry_delay(delay)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def health(self) -> Mapping[str, Any]:
        webhook = self.webhook
        return {
            "written": self.sink.written,
            "malformed": self.malformed,
            "rotated": self.sink.rotated,
            "subscribed": self.subscribed,
            "resubscribed": max(0, self.subscriptions - 1),
            "disconnects": self.disconnects,
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
            self.sink.close()


def main(settings: Settings) -> int:
    return run_service(CentralLogger, "logger", settings)
