"""The CentralLogger against the real test Redis: stream:logs (consumer group) -> file,
rotation, malformed entries, the one-second flush, a killed connection, a restart that loses
and repeats nothing, and a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.config import Settings
from spreadbus.logger.service import next_retry_delay
from spreadbus.logger.sink import LOG_FILE_NAME, log_dir
from spreadbus.proc import free_port
from spreadbus.testing import tmpfs

from .helpers import LoggedEvent, eventually, publish, read_records, running_logger

REQUIRED = {"time", "level", "service", "event", "fields"}


async def test_events_of_several_services_are_written_with_the_required_keys(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    sent = [
        ("gateway", "connected", "INFO", {"url": "wss://fstream.binance.com"}),
        ("engine", "refit", "DEBUG", {"pair": "ETHUSDT/BTCUSDT", "beta": 1.5}),
        ("archivist", "slow write", "WARNING", {"seconds": 3.2}),
        ("web", "handler failed", "ERROR", {"path": "/api/pairs"}),
    ]
    async with running_logger(settings) as service:
        for name, event, level, fields in sent:
            await publish(aredis, name, event, level, **fields)  # type: ignore[arg-type]
        await aredis.xadd(keys.LOG_STREAM, {keys.LOG_STREAM_FIELD: b"not json at all {"})
        await eventually(lambda: service.health()["written"] == 5)

    records = read_records(data_dir)
    assert all(record.keys() >= REQUIRED for record in records)
    assert [(r["service"], r["event"], r["level"], r["fields"]) for r in records[:4]] == sent
    bad = records[4]
    assert (bad["service"], bad["event"], bad["raw"]) == (
        "unknown",
        "unparsed",
        "not json at all {",
    )
    assert "not JSON" in bad["parse_error"]
    health = service.health()
    assert (health["written"], health["malformed"]) == (5, 1)


async def test_rotation_keeps_the_configured_number_of_files(
    redis_url: str, aredis: aioredis.Redis, data_dir: Path
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=data_dir, log_max_bytes=2048, log_backups=2)
    async with running_logger(settings) as service:
        for number in range(200):
            await publish(aredis, "engine", "step", n=number)
        await eventually(lambda: service.health()["written"] == 200)
        assert service.health()["rotated"] >= 5

    names = sorted(path.name for path in log_dir(data_dir).iterdir())
    assert names == [LOG_FILE_NAME, f"{LOG_FILE_NAME}.1", f"{LOG_FILE_NAME}.2"]
    numbers = [record["fields"]["n"] for record in read_records(data_dir)]
    assert numbers == list(range(200 - len(numbers), 200))


async def test_events_reach_the_disk_within_about_a_second_without_a_stop(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    """What a crash can lose: the file is flushed while the logger keeps running."""
    async with running_logger(settings) as service:
        await publish(aredis, "gateway", "first")  # after a quiet spell: flushed at once
        await eventually(lambda: len(read_records(data_dir)) == 1, within=2)
        for number in range(20):
            await publish(aredis, "gateway", "burst", n=number)
        await eventually(lambda: service.health()["written"] == 21)
        written_at = time.monotonic()
        await eventually(lambda: len(read_records(data_dir)) == 21, within=3)
        visible_after = time.monotonic() - written_at
    assert visible_after < 2.0  # flush interval 1 s + one 0.25 s poll, with slack for CI


async def test_nothing_is_lost_when_redis_kills_the_logger_connection(
    settings: Settings,
    aredis: aioredis.Redis,
    data_dir: Path,
) -> None:
    async with running_logger(settings) as service:
        await publish(aredis, "engine", "before kill")
        await eventually(lambda: service.health()["written"] == 1)
        killed = await aredis.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        # published while the logger has no connection: the stream keeps them
        for number in range(10):
            await publish(aredis, "engine", "after kill", n=number)
        await eventually(lambda: service.health()["written"] == 11)
        await eventually(lambda: service.health()["reading"] is True)

    events = [record["event"] for record in read_records(data_dir)]
    assert events == ["before kill"] + ["after kill"] * 10


async def test_a_restarted_logger_writes_what_it_missed_and_nothing_twice(
    settings: Settings, aredis: aioredis.Redis, data_dir: Path
) -> None:
    """First run: 30 events written and acknowledged. Then 20 more while no logger runs, and
    the group's acknowledgements of the last 5 written ones undone (as a kill -9 between the
    fsync and the XACK leaves them): the second run writes exactly the 20 missing ones."""
    async with running_logger(settings) as service:
        for number in range(30):
            await publish(aredis, "engine", "step", n=number)
        await eventually(lambda: service.health()["acked"] >= 30)
    stream_ids = [r["stream_id"] for r in read_records(data_dir)]
    for number in range(30, 50):
        await publish(aredis, "engine", "step", n=number)
    # un-acknowledge the last five: XCLAIM needs them pending, so re-deliver with a fresh group
    await aredis.xgroup_setid(keys.LOG_STREAM, keys.LOG_GROUP, stream_ids[-6])
    async with running_logger(settings) as service:
        await eventually(lambda: service.health()["written"] == 20)
        await eventually(lambda: service.health()["duplicates_skipped"] == 5)
    numbers = [r["fields"]["n"] for r in read_records(data_dir)]
    assert numbers == list(range(50))  # every event once, in order
    pending = await aredis.xpending(keys.LOG_STREAM, keys.LOG_GROUP)
    assert pending["pending"] == 0


async def test_survives_a_redis_restart_with_capped_backoff(
    tmp_path: Path, data_dir: Path, logger_events: list[LoggedEvent]
) -> None:
    """A real outage on a Redis of this test's own: the logger keeps retrying and resubscribes
    when the server is back (same port, same password, as after a supervisor restart)."""
    server = EmbeddedRedis(tmp_path / "own-redis", port=free_port())
    server.start()
    try:
        settings = Settings(redis_url=server.url, data_dir=data_dir)
        client = aioredis.Redis.from_url(server.url)
        async with running_logger(settings) as service:
            await publish(client, "engine", "before outage")
            await eventually(lambda: service.health()["written"] == 1)
            server.stop()
            await eventually(lambda: service.health()["disconnects"] >= 3)  # retrying, not stuck
            server.start()
            await eventually(lambda: service.health()["reconnected"] == 1, within=10)
            # from_url clients do not retry: drop this test client's dead pooled connection
            await client.connection_pool.disconnect()
            await publish(client, "engine", "after outage")
            await eventually(lambda: service.health()["written"] == 2)
        await client.aclose()
    finally:
        server.stop()

    assert [r["event"] for r in read_records(data_dir)] == ["before outage", "after outage"]
    logged = [(e.level, e.event) for e in logger_events]
    assert logged.count(("WARNING", "redis connection lost")) == 1  # one warning per outage
    back = next(e for e in logger_events if e.event == "reconnected")
    assert back.fields["down_s"] > 0
    assert back.fields["disconnects"] >= 3


def test_reconnect_backoff_starts_at_once_and_is_capped() -> None:
    delays = [0.0]
    for _ in range(8):
        delays.append(next_retry_delay(delays[-1]))
    assert delays == [0.0, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Callable[[str], None]]:
    try:
        with tmpfs.small_tmpfs(path, size) as resize:
            yield resize
    except tmpfs.TmpfsUnavailableError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")


async def test_a_full_disk_is_reported_as_such_and_nothing_is_lost_when_space_returns(
    redis_url: str, aredis: aioredis.Redis, data_dir: Path, logger_events: list[LoggedEvent]
) -> None:
    settings = Settings(redis_url=redis_url, data_dir=data_dir, log_max_bytes=2**30, log_backups=0)
    with small_tmpfs(log_dir(data_dir), "32k") as resize:
        async with running_logger(settings) as service:
            sent = 0
            while service.health_state.verdict().state != "failing":
                for _ in range(50):
                    await publish(aredis, "engine", "fill", n=sent, pad="x" * 200)
                    sent += 1
                await asyncio.sleep(0.05)
                assert sent < 5000, "the disk never filled"
            verdict = service.health_state.verdict()
            assert "No space left on device" in verdict.reason
            assert service.health()["disk_errors"] >= 1
            for _ in range(100):  # more while the disk is full
                await publish(aredis, "engine", "fill", n=sent, pad="x" * 200)
                sent += 1
            resize("4m")
            await eventually(lambda: service.health_state.verdict().state == "running", 10)
            await eventually(lambda: service.sink.written >= sent, 10)
        numbers = [r["fields"]["n"] for r in read_records(data_dir) if r["event"] == "fill"]
    assert numbers == list(range(sent))  # every event once, in order
    logged = [(e.level, e.event) for e in logger_events]
    assert ("ERROR", "log disk error") in logged and (
        "WARNING",
        "redis connection lost",
    ) not in logged
    assert ("INFO", "log disk writable again") in logged
