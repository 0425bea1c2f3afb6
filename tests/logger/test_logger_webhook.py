"""ERROR and above go to a real local HTTP endpoint; a dead or hanging endpoint never slows
the file writing, its failures are counted and logged, and never forwarded themselves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.logger.webhook import FAILED_EVENT, TokenBucket, WebhookForwarder

from .helpers import LoggedEvent, WebhookServer, eventually, publish, read_records, running_logger


def _forwarder(url: str, **options: float) -> WebhookForwarder:
    defaults = {"rate": 1000.0, "timeout": 0.5, "attempts": 3, "backoff": 0.01}
    defaults.update(options)
    queue_size = int(defaults.pop("queue_size", 100))
    drain = defaults.pop("drain_timeout", 1.0)
    return WebhookForwarder(
        url,
        log=EventLog("logger"),
        queue_size=queue_size,
        drain_timeout=drain,
        **defaults,  # type: ignore[arg-type]
    )


async def test_error_events_are_posted_and_info_events_are_not(
    redis_url: str,
    data_dir: Path,
    aredis: aioredis.Redis,
    webhook_server: Callable[..., WebhookServer],
) -> None:
    server = webhook_server()
    settings = Settings(redis_url=redis_url, data_dir=data_dir, log_webhook_url=server.url)
    async with running_logger(settings) as service:  # the forwarder built from the settings
        await publish(aredis, "engine", "all good", "INFO")
        await publish(aredis, "engine", "noisy", "WARNING")
        await publish(aredis, "gateway", "feed down", "ERROR", symbol="BTCUSDT")
        await publish(aredis, "web", "out of memory", "CRITICAL")
        await eventually(lambda: service.health()["webhook_sent"] == 2)

    assert [(b["service"], b["event"], b["level"]) for b in server.bodies] == [
        ("gateway", "feed down", "ERROR"),
        ("web", "out of memory", "CRITICAL"),
    ]
    assert server.bodies[0]["fields"] == {"symbol": "BTCUSDT"}
    assert server.bodies[0]["text"] == "[ERROR] gateway: feed down symbol=BTCUSDT"
    assert server.requests == 2
    # log_webhook_rate defaults to 1/s with a burst of one: the second post had to wait
    assert server.arrivals[1] - server.arrivals[0] >= 0.8
    assert len(read_records(data_dir)) == 4  # the file has everything either way


async def test_a_failing_post_is_retried_and_a_permanent_refusal_is_not(
    settings: Settings,
    aredis: aioredis.Redis,
    webhook_server: Callable[..., WebhookServer],
    logger_events: list[LoggedEvent],
) -> None:
    server = webhook_server(statuses=[503, 503, 200, 400])
    forwarder = _forwarder(server.url, attempts=3)
    async with running_logger(settings, forwarder) as service:
        await publish(aredis, "engine", "first", "ERROR")
        await eventually(lambda: forwarder.sent == 1)
        await publish(aredis, "engine", "second", "ERROR")
        await eventually(lambda: forwarder.failed == 1)
        health = service.health()

    assert server.requests == 4  # 503, 503, 200 for the first; one 400, no retry, for the second
    assert [body["event"] for body in server.bodies] == ["first"]
    assert (health["webhook_sent"], health["webhook_failed"]) == (1, 1)
    failures = [e for e in logger_events if e.event == FAILED_EVENT]
    assert len(failures) == 1
    assert failures[0].level == "WARNING"
    assert failures[0].fields["error"] == "HTTP 400"
    assert failures[0].fields["of_event"] == "second"
    assert "/hook" not in str(failures[0].fields)  # the URL path may be a secret


@pytest.mark.parametrize("endpoint", ["nothing listening", "hangs"])
async def test_a_dead_webhook_does_not_slow_the_logger(
    endpoint: str,
    settings: Settings,
    aredis: aioredis.Redis,
    data_dir: Path,
    dead_url: str,
    webhook_server: Callable[..., WebhookServer],
    logger_events: list[LoggedEvent],
) -> None:
    url = dead_url if endpoint == "nothing listening" else webhook_server(hang=True).url
    forwarder = _forwarder(url, rate=2.0, queue_size=10, timeout=1.0, drain_timeout=0.1)
    events = 300
    async with running_logger(settings, forwarder) as service:
        started = time.monotonic()
        for number in range(events):
            await publish(aredis, "engine", "broken", "ERROR", n=number)
        await eventually(lambda: service.health()["written"] == events)
        elapsed = time.monotonic() - started
        health = service.health()

    # Every event is on disk, in order, long before the webhook could have taken even a few.
    assert [r["fields"]["n"] for r in read_records(data_dir)] == list(range(events))
    assert elapsed < 5.0, f"{events} events took {elapsed:.2f} s with the webhook {endpoint}"
    assert health["webhook_sent"] == 0
    # What the sender took off the queue is bounded by the rate limit (2/s, burst 2) when the
    # endpoint refuses at once, and by the one stuck request when it hangs; the rest were
    # dropped once the 10 queue slots were full.
    taken = events - health["webhook_dropped"] - health["webhook_queued"]
    assert taken <= 2 + 2.0 * elapsed + 2
    assert health["webhook_queued"] <= 10
    if endpoint == "nothing listening":
        assert health["webhook_failed"] >= 1
        assert any(e.event == FAILED_EVENT for e in logger_events)


async def test_the_loggers_own_webhook_failures_are_not_forwarded(
    settings: Settings,
    aredis: aioredis.Redis,
    webhook_server: Callable[..., WebhookServer],
) -> None:
    """In production the logger hears its own events on channel:logs; forwarding its webhook
    failure reports would make a failing webhook feed itself."""
    server = webhook_server()
    async with running_logger(settings, _forwarder(server.url)) as service:
        await publish(aredis, "logger", FAILED_EVENT, "ERROR", error="HTTP 500")
        await publish(aredis, "logger", "crashed", "ERROR")
        await eventually(lambda: service.health()["webhook_sent"] == 1)
        await eventually(lambda: service.health()["written"] == 2)
    assert [body["event"] for body in server.bodies] == ["crashed"]


def test_token_bucket_spaces_requests_at_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, capacity=2.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.5]
    now[0] = 10.0  # a long quiet spell refills only up to the capacity
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.5]


def test_default_burst_is_one_second_of_rate() -> None:
    assert TokenBucket(rate=0.2).capacity == 1.0
    assert TokenBucket(rate=5.0).capacity == 5.0
