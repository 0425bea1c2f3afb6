"""The service lifecycle: heartbeat with TTL, --check, logs on channel:logs, close in finally."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import LogEvent
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.health import HealthState
from spreadbus.bus.service import EventLog, LogPublisher, _lifecycle, check_health
from spreadbus.config import Settings


class Sleeper:
    """The smallest real service: works until stopped, counts its beats, records close()."""

    name = "sleeper"

    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        self.log = log
        self.closed = False
        self.loops = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.log.info("working", answer=42)
        while not stop.is_set():
            self.loops += 1
            await asyncio.sleep(0.05)

    def health(self) -> Mapping[str, Any]:
        return {"loops": self.loops, "mode": "test"}

    async def close(self) -> None:
        self.closed = True


async def test_heartbeat_check_logs_and_clean_stop(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    services: list[Sleeper] = []

    def factory(s: Settings, c: AsyncRedis, log: EventLog) -> Sleeper:
        services.append(Sleeper(s, c, log))
        return services[-1]

    pubsub = aredis.pubsub()
    await pubsub.subscribe(keys.CHANNEL_LOGS)
    task = asyncio.create_task(_lifecycle(factory, "sleeper", settings))
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(e["event"] == "working" for e in events):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message:
            events.append(orjson.loads(message["data"]))
    await _wait_beat(aredis, "sleeper", b"running")
    beat = await aredis.hgetall(keys.health("sleeper"))
    assert beat[b"pid"] == str(os.getpid()).encode()
    assert beat[b"mode"] == b"test"  # text health fields are fields of their own
    assert (beat[b"status"], beat[b"reason"]) == (b"running", b"")
    assert orjson.loads(beat[b"counters"])["loops"] >= 0
    ttl = await aredis.pttl(keys.health("sleeper"))
    assert 0 < ttl <= 5000
    healthy, message = await asyncio.to_thread(check_health, "sleeper", settings)
    assert healthy and f"pid {os.getpid()}" in message
    working = next(e for e in events if e["event"] == "working")
    assert working["service"] == "sleeper" and working["level"] == "INFO"
    assert working["fields"] == {"answer": 42} and "time" in working
    # the same event, durable, in stream:logs (what the logger's consumer group reads)
    durable = [orjson.loads(f[b"event"]) for _, f in await aredis.xrange(keys.LOG_STREAM)]
    assert working in durable
    # beats stay in the hash: no log event per beat (interval 0.5 s, several beats by now)
    assert not any(e["event"] == "heartbeat" for e in durable)
    os.kill(os.getpid(), signal.SIGTERM)  # the lifecycle's own handler turns it into a stop
    assert await asyncio.wait_for(task, 10) == 0
    assert services[0].closed
    assert await aredis.exists(keys.health("sleeper")) == 0
    healthy, message = check_health("sleeper", settings)
    assert not healthy and "not running" in message
    await pubsub.aclose()


def test_check_reports_stale_heartbeat(settings: Settings, sync_redis: redis.Redis) -> None:
    sync_redis.hset(
        keys.health("gateway"),
        mapping={"pid": 1, "last_beat_ms": int(time.time() * 1000) - 60_000, "interval_s": 2},
    )
    healthy, message = check_health("gateway", settings)
    assert not healthy and "stale" in message


def test_check_command_exit_codes(redis_url: str, sync_redis: redis.Redis) -> None:
    env = {**os.environ, "SPREADBUS_REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "spreadbus", "engine", "--check"]
    down = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert down.returncode == 1 and "not running" in down.stdout
    sync_redis.hset(
        keys.health("engine"),
        mapping={"pid": 7, "last_beat_ms": int(time.time() * 1000), "interval_s": 2},
    )
    up = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0 and "engine: running" in up.stdout
    sync_redis.hset(keys.health("engine"), mapping={"status": "degraded", "reason": "slow"})
    slow = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert slow.returncode == 0 and "engine: degraded (slow)" in slow.stdout
    sync_redis.hset(
        keys.health("engine"), mapping={"status": "failing", "reason": "reader died: boom"}
    )
    failing = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert failing.returncode == 1 and "engine: failing (reader died: boom)" in failing.stdout


def test_check_without_redis_is_one_line(tmp_path: Any) -> None:
    env = {**os.environ, "SPREADBUS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "spreadbus", "logger", "--check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "no Redis" in done.stdout and "Traceback" not in done.stdout + done.stderr


class Fragile(Sleeper):
    """A service with one essential helper task that dies, and a health() that starts raising:
    its heartbeat must say so, and keep beating."""

    name = "fragile"

    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        super().__init__(settings, client, log)
        self.health_state = HealthState()
        self.break_health = False

    async def _helper(self) -> None:
        await asyncio.sleep(0.3)
        raise RuntimeError("helper broke")

    async def run(self, stop: asyncio.Event) -> None:
        self.health_state.spawn("helper", self._helper())
        await super().run(stop)

    def health(self) -> Mapping[str, Any]:
        if self.break_health:
            raise ValueError("counter gone")
        return super().health()


async def _wait_beat(client: aioredis.Redis, name: str, want: bytes) -> dict[bytes, bytes]:
    deadline = time.monotonic() + 10
    beat: dict[bytes, bytes] = {}
    while time.monotonic() < deadline:
        beat = await client.hgetall(keys.health(name))
        if beat.get(b"status") == want:
            return beat
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reported {want!r}; last beat {beat}")


async def test_a_dead_task_or_a_raising_health_makes_the_service_failing_and_it_keeps_beating(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    made: list[Fragile] = []

    def factory(s: Settings, c: AsyncRedis, log: EventLog) -> Fragile:
        made.append(Fragile(s, c, log))
        return made[-1]

    task = asyncio.create_task(_lifecycle(factory, "fragile", settings))
    beat = await _wait_beat(aredis, "fragile", b"failing")
    assert beat[b"reason"] == b"helper died: RuntimeError('helper broke')"
    healthy, message = await asyncio.to_thread(check_health, "fragile", settings)
    assert not healthy and "failing (helper died" in message
    # health() raising: the beat goes on, failing with that reason
    made[0].health_state.unwatch("helper")
    await _wait_beat(aredis, "fragile", b"running")
    made[0].break_health = True
    beat = await _wait_beat(aredis, "fragile", b"failing")
    assert b"health() raised ValueError('counter gone')" in beat[b"reason"]
    first = int(beat[b"last_beat_ms"])
    deadline = time.monotonic() + 5
    while int((await aredis.hgetall(keys.health("fragile")))[b"last_beat_ms"]) == first:
        assert time.monotonic() < deadline, "the heartbeat stopped beating"
        await asyncio.sleep(0.05)
    # each change of state was logged once, durably
    states = [
        e["fields"] for _, f in await aredis.xrange(keys.LOG_STREAM)
        if (e := orjson.loads(f[b"event"]))["event"] == "state" and e["service"] == "fragile"
    ]  # fmt: skip
    assert [s["state"] for s in states] == ["failing", "running", "failing"]
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 10) == 0


class Stubborn(Sleeper):
    """Ignores the stop signal and swallows its cancellation for three seconds: far longer
    than the grace time (bounded only so the test's own event loop can close)."""

    name = "stubborn"

    async def run(self, stop: asyncio.Event) -> None:
        until = asyncio.get_running_loop().time() + 3
        while asyncio.get_running_loop().time() < until:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue


async def test_a_service_that_ignores_stop_is_abandoned_not_waited_for(
    settings: Settings, aredis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spreadbus.bus import service as lifecycle

    monkeypatch.setattr(lifecycle, "STOP_GRACE", 0.5)
    task = asyncio.create_task(_lifecycle(Stubborn, "stubborn", settings))
    for _ in range(100):
        if await aredis.exists(keys.health("stubborn")):
            break
        await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 30) == 1  # reported as a failed stop, not a hang


def test_a_stuck_service_process_still_exits(redis_url: str) -> None:
    """A real process whose work ignores SIGTERM and cancellation must still exit."""
    script = (
        "import asyncio, sys\n"
        "from spreadbus.bus import service\n"
        "from spreadbus.config import Settings\n"
        "service.STOP_GRACE = 0.5\n"
        "class Stuck:\n"
        "    name = 'stuck'\n"
        "    def __init__(self, *a): pass\n"
        "    async def run(self, stop):\n"
        "        while True:\n"
        "            try:\n"
        "                await asyncio.sleep(0.05)\n"
        "            except asyncio.CancelledError:\n"
        "                pass\n"
        "    def health(self): return {}\n"
        "    async def close(self): pass\n"
        f"sys.exit(service.run_service(Stuck, 'stuck', Settings(redis_url={redis_url!r})))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    time.sleep(3)  # started and beating
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 1
    assert process.stderr is not None
    assert b"did not stop in time" in process.stderr.read()
    process.stderr.close()


def test_a_service_whose_close_hangs_is_ended_by_force(redis_url: str) -> None:
    """close() that never returns and swallows cancellation defeats every bounded step; the
    last-resort timer must still end the process."""
    script = (
        "import asyncio, sys\n"
        "from spreadbus.bus import service\n"
        "from spreadbus.config import Settings\n"
        "service.STOP_GRACE = 0.3\n"
        "service.HARD_EXIT_AFTER = 1.0\n"
        "class Hangs:\n"
        "    name = 'hangs'\n"
        "    def __init__(self, *a): pass\n"
        "    async def run(self, stop): await stop.wait()\n"
        "    def health(self): return {}\n"
        "    async def close(self):\n"
        "        while True:\n"
        "            try:\n"
        "                await asyncio.sleep(0.05)\n"
        "            except asyncio.CancelledError:\n"
        "                pass\n"
        f"sys.exit(service.run_service(Hangs, 'hangs', Settings(redis_url={redis_url!r})))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 1
    assert process.stderr is not None
    assert b"exiting by force" in process.stderr.read()
    process.stderr.close()


class _BreaksOnce:
    """A real client whose first pipeline fails as redis-py's cluster client did once in a
    failover (an internal AttributeError, not a Redis error): a fault that cannot be produced
    on demand, so it is injected; everything else is the real Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.broken = False

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        if not self.broken:
            self.broken = True
            raise AttributeError("'NoneType' object has no attribute 'writelines'")
        return self.client.pipeline(*args, **kwargs)


async def test_the_log_publisher_survives_any_send_failure_and_keeps_its_events(
    aredis: aioredis.Redis,
) -> None:
    publisher = LogPublisher("gateway")
    publisher.publish(LogEvent("INFO", "gateway", "before the failure", {}))
    client: Any = _BreaksOnce(aredis)
    task = asyncio.create_task(publisher.run(client))
    try:
        deadline = time.monotonic() + 30
        while await aredis.xlen(keys.LOG_STREAM) < 1:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "the event never reached stream:logs"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    entries: Any = await aredis.xrange(keys.LOG_STREAM)
    assert (
        len(entries) == 1 and b"before the failure" in entries[0][1][keys.LOG_STREAM_FIELD.encode()]
    )
    assert publisher.send_failures == 1 and "AttributeError" in publisher.last_send_error
