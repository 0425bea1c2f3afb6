"""``python -m spreadbus logger`` as a real process: healthy by ``--check``, writes what is
published (its own events included), stops cleanly with exit 0 on SIGTERM; killed with -9 in
the middle of a stream of events and started again, it writes every event exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis

from spreadbus.bus import keys
from spreadbus.bus.codec import LogEvent, log_event_to_json
from spreadbus.proc import terminate

from .helpers import read_records

COMMAND = [sys.executable, "-m", "spreadbus", "logger"]


def _wait(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {within} s"
        time.sleep(0.05)


def test_logger_process_beats_writes_and_stops_on_sigterm(
    redis_url: str, data_dir: Path, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": redis_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
    }

    def check() -> int:
        result = subprocess.run([*COMMAND, "--check"], env=env, capture_output=True, check=False)
        return result.returncode

    assert check() == 1  # nothing running yet
    console = tmp_path / "logger.err"
    with console.open("wb") as stderr:
        process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait(lambda: sync_redis.exists(keys.health("logger")) == 1, 20, "a heartbeat")
        assert check() == 0
        for number in range(5):
            event = LogEvent("WARNING", "gateway", "reconnecting", {"attempt": number})
            sync_redis.xadd(keys.LOG_STREAM, {keys.LOG_STREAM_FIELD: log_event_to_json(event)})

        def written() -> list[tuple[str, str]]:
            return [(r["service"], r["event"]) for r in read_records(data_dir)]

        # without a stop: what is on disk is what a crash would leave (flush within ~1 s)
        _wait(lambda: written().count(("gateway", "reconnecting")) == 5, 5, "the events on disk")
        _wait(lambda: ("logger", "started") in written(), 5, "the logger's own start event")

        def counters() -> dict[str, Any]:
            beat = sync_redis.hgetall(keys.health("logger"))
            return dict(orjson.loads(beat[b"counters"])) if beat else {}

        # the heartbeat hash lags the file by up to one beat
        _wait(lambda: counters().get("written", 0) >= 5, 5, "the counters in the heartbeat")
        assert counters()["reading"] is True
    finally:
        code = terminate(process, 30)  # generous: a loaded CI box once took >15 s here

    output = console.read_text()
    assert code == 0, output
    assert check() == 1  # the heartbeat key went away with the process
    assert "started" in output
    assert "stopped" in output
    assert "Traceback" not in output


def test_logger_kill_9_loses_and_repeats_nothing(
    redis_url: str, data_dir: Path, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    env = {**os.environ, "SPREADBUS_REDIS_URL": redis_url, "SPREADBUS_DATA_DIR": str(data_dir)}
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            event = LogEvent("INFO", "chaos", "tick", {"n": sent})
            sync_redis.xadd(keys.LOG_STREAM, {keys.LOG_STREAM_FIELD: log_event_to_json(event)})
            sent += 1

    def numbers() -> list[int]:
        return [r["fields"]["n"] for r in read_records(data_dir) if r["service"] == "chaos"]

    for round_ in range(3):
        process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            send(300)
            # killed while it is still writing (or right after): some of it unacknowledged
            _wait(lambda: len(numbers()) > 0, 20, f"round {round_}: first events on disk")
            send(200)
        finally:
            process.kill()
            process.wait(10)
        send(100)  # while no logger runs
    process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait(lambda: len(numbers()) >= sent, 20, "every event on disk")
    finally:
        assert terminate(process, 30) == 0
    assert numbers() == list(range(sent))  # each once, in order: 0 lost, 0 duplicated
