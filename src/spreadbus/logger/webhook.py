"""Forward ERROR and above to an HTTP webhook without ever slowing the logger down.

The listen loop only calls :meth:`WebhookForwarder.offer`, which puts the record on a bounded
queue and returns; when the queue is full the record is dropped and counted (the file still
has it). A separate task drains the queue: a token bucket caps the request rate, a failed
POST is retried with capped exponential backoff, and a final failure is counted and logged
as a WARNING. The logger's own webhook events are never forwarded, so a dead webhook cannot
feed itself one failure report per failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from spreadbus.bus.service import EventLog
from spreadbus.logger.record import Record, level_rank

FORWARD_MIN_LEVEL = "ERROR"
FAILED_EVENT = "webhook failed"
QUEUE_FULL_EVENT = "webhook queue full"
OWN_EVENTS = frozenset({FAILED_EVENT, QUEUE_FULL_EVENT})
# 429 and 5xx say "later"; any other 4xx says "never", so retrying it only burns the budget.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up (a short burst)."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self.tokens = self.capacity
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """Reserve one token; the seconds to wait before using it (0 when one was saved up).

        Tokens may go negative: each reservation queues behind the previous ones, so callers
        that sleep the returned delay are spaced exactly ``1 / rate`` apart.
        """
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def webhook_payload(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record itself plus a one-line ``text`` that chat webhooks (Slack, Mattermost) show."""
    fields = record.get("fields") or {}
    detail = " ".join(f"{key}={value}" for key, value in fields.items())
    text = f"[{record.get('level')}] {record.get('service')}: {record.get('event')} {detail}"
    return {"text": text.rstrip(), **record}


class WebhookForwarder:
    """Bounded queue + one sender task; counters ``sent``, ``failed``, ``dropped``."""

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        log: EventLog,
        queue_size: int = 1000,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff: float = 0.5,
        backoff_cap: float = 8.0,
        drain_timeout: float = 2.0,
        report_interval: float = 10.0,
    ) -> None:
        self.url = url
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._log = log
        self._bucket = TokenBucket(rate)
        self._queue: asyncio.Queue[Record] = asyncio.Queue(queue_size)
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._backoff_cap = backoff_cap
        self._drain_timeout = drain_timeout
        self._report_interval = report_interval
        self._last_report: dict[str, float] = {}
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def wants(self, record: Mapping[str, Any]) -> bool:
        if level_rank(record.get("level")) < level_rank(FORWARD_MIN_LEVEL):
            return False
        own = record.get("service") == self._log.service and record.get("event") in OWN_EVENTS
        return not own

    def offer(self, record: Record) -> None:
        """Queue ``record`` if it should go out; never waits."""
        if not self.wants(record):
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            self._report(QUEUE_FULL_EVENT, dropped=self.dropped, queue_size=self._queue.maxsize)

    def start(self) -> None:
        if self._task is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._task = asyncio.create_task(self._send_forever(), name="logger-webhook")

    async def close(self) -> None:
        """Give queued records ``drain_timeout`` seconds to go out, then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), self._drain_timeout)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send_forever(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await asyncio.sleep(self._bucket.take())
                await self._deliver(record)
            except Exception as exc:  # a bug here must cost one record, not the forwarder
                self.failed += 1
                self._report(FAILED_EVENT, error=repr(exc), failed=self.failed)
            finally:
                self._queue.task_done()

    async def _deliver(self, record: Record) -> None:
        assert self._client is not None  # start() made it
        body = orjson.dumps(webhook_payload(record), default=str)
        headers = {"content-type": "application/json"}
        delay = self._backoff
        error = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.post(self.url, content=body, headers=headers)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if response.is_success:
                    self.sent += 1
                    return
                error = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_cap)
        self.failed += 1
        self._report(
            FAILED_EVENT,
            host=httpx.URL(self.url).host,  # never the full URL: webhook paths are secrets
            attempts=attempt,
            error=error,
            failed=self.failed,
            of_service=record.get("service"),
            of_event=record.get("event"),
        )

    def _report(self, event: str, **fields: Any) -> None:
        """Log a webhook problem; the first one at once, then at most once per interval."""
        now = time.monotonic()
        if now - self._last_report.get(event, float("-inf")) >= self._report_interval:
            self._last_report[event] = now
            self._log.warning(event, **fields)
