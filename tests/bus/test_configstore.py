"""config:pairs: a typed --pairs wins and says so, the environment only seeds; the one
ConfigWatcher every service uses."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.configstore import ConfigWatcher, load_pairs, replace_pairs_from_flag
from spreadbus.bus.connect import AsyncRedis, connect
from spreadbus.bus.health import HealthState
from spreadbus.bus.service import EventLog, _lifecycle
from spreadbus.cli import _settings, build_parser
from spreadbus.config import Settings


def test_only_a_typed_pairs_flag_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = _settings(build_parser().parse_args(["engine", "--pairs", "solusdt/ethusdt"]))
    assert typed.pairs == ("SOLUSDT/ETHUSDT",) and typed.pairs_override is True
    monkeypatch.setenv("SPREADBUS_PAIRS", "SOLUSDT/ETHUSDT")
    seeded = _settings(build_parser().parse_args(["engine"]))
    assert seeded.pairs == ("SOLUSDT/ETHUSDT",) and seeded.pairs_override is False
    assert "SPREADBUS_PAIRS_OVERRIDE" not in typed.child_environment()


async def test_replace_says_what_it_replaced(aredis: aioredis.Redis) -> None:
    await aredis.sadd(keys.CONFIG_PAIRS, "ETHUSDT/BTCUSDT")
    message = await replace_pairs_from_flag(aredis, ["SOLUSDT/ETHUSDT", "BNBUSDT/BTCUSDT"])
    assert message == (
        "--pairs replaced the stored config:pairs (ETHUSDT/BTCUSDT) with "
        "BNBUSDT/BTCUSDT, SOLUSDT/ETHUSDT"
    )
    assert await load_pairs(aredis, ()) == ["BNBUSDT/BTCUSDT", "SOLUSDT/ETHUSDT"]
    assert await replace_pairs_from_flag(aredis, ["SOLUSDT/ETHUSDT", "BNBUSDT/BTCUSDT"]) is None


class Idle:
    name = "idle"

    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(0.2)

    def health(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        pass


async def test_a_service_started_with_pairs_replaces_the_stored_set_and_logs_it(
    redis_url: str, data_dir: object, aredis: aioredis.Redis
) -> None:
    await aredis.sadd(keys.CONFIG_PAIRS, "ETHUSDT/BTCUSDT")
    seeded = Settings(redis_url=redis_url, pairs=("SOLUSDT/ETHUSDT",))
    assert await _lifecycle(Idle, "idle", seeded) == 0
    assert await load_pairs(aredis, ()) == ["ETHUSDT/BTCUSDT"]  # the default only seeds
    typed = Settings(redis_url=redis_url, pairs=("SOLUSDT/ETHUSDT",), pairs_override=True)
    assert await _lifecycle(Idle, "idle", typed) == 0
    assert await load_pairs(aredis, ()) == ["SOLUSDT/ETHUSDT"]
    events = [orjson.loads(f[b"event"]) for _, f in await aredis.xrange(keys.LOG_STREAM)]
    said = [e for e in events if e["event"].startswith("--pairs replaced")]
    assert len(said) == 1 and said[0]["level"] == "WARNING"
    assert "(ETHUSDT/BTCUSDT) with SOLUSDT/ETHUSDT" in said[0]["event"]


async def _until(predicate: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_watcher_follows_announcements_and_a_killed_connection(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    client = connect(settings)
    seen: list[float] = []

    async def on_change() -> None:
        seen.append(time.monotonic())

    watcher = ConfigWatcher(client, on_change, poll_s=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.wait_for(watcher.subscribed.wait(), 10)
    assert seen == []  # nothing announced yet
    await aredis.publish(keys.CHANNEL_CONFIG, b"pairs")
    await _until(lambda: len(seen) == 1)
    # a killed connection: announcements meanwhile may be lost, so it re-reads once back
    await aredis.client_kill_filter(_type="pubsub")
    await _until(lambda: len(seen) == 2)
    stop.set()
    await asyncio.wait_for(task, 5)
    await client.aclose()


async def test_a_broken_apply_ends_the_watcher_and_the_health_says_so(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    client = connect(settings)

    async def on_change() -> None:
        raise ValueError("bad pair handling")

    state = HealthState()
    watcher = ConfigWatcher(client, on_change)
    task = state.spawn("config watcher", watcher.run(asyncio.Event()))
    await asyncio.wait_for(watcher.subscribed.wait(), 10)
    await aredis.publish(keys.CHANNEL_CONFIG, b"pairs")
    await asyncio.wait({task}, timeout=10)
    verdict = state.verdict()
    assert verdict.state == "failing"
    assert verdict.reason == "config watcher died: ValueError('bad pair handling')"
    await client.aclose()
