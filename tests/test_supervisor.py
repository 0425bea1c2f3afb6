"""``spreadbus up``: real processes, a real crash, a real kill -9 of the supervisor."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from spreadbus.bus import keys
from spreadbus.proc import free_port

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    """Running and not a zombie (in a container nobody may reap an orphan's corpse)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def gateway_pid(client: redis.Redis) -> int | None:
    pid = client.hget(keys.health("gateway"), "pid")
    return int(pid) if pid else None


def test_up_restarts_a_crashed_child_and_leaves_no_orphans(
    redis_url: str, sync_redis: redis.Redis, data_dir: Path
) -> None:
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": redis_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SOURCE": "sim",
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.3",
        "SPREADBUS_WEB_PORT": str(free_port()),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "up", "--duration", "120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        first = wait_for(lambda: gateway_pid(sync_redis), 30, "the gateway's heartbeat")
        os.kill(first, signal.SIGKILL)
        second = wait_for(
            lambda: (pid := gateway_pid(sync_redis)) not in (None, first) and pid,
            30,
            "a restarted gateway",
        )
        assert alive(second)
        children = [
            int(p) for name in ("gateway", "engine", "logger", "archivist", "web")
            if (p := sync_redis.hget(keys.health(name), "pid"))
        ]  # fmt: skip
        up.kill()  # no chance to clean up: the kernel's parent-death signal must do it
        up.wait(10)
        wait_for(lambda: not any(alive(p) for p in children), 20, "children to exit")
    finally:
        if up.poll() is None:
            up.kill()
        output, _ = up.communicate()
    assert "gateway  exited with code -9; restarting in" in output


def test_up_duration_stops_everything_in_order_with_redis_last(data_dir: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SOURCE": "sim",
        "SPREADBUS_WEB_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "spreadbus", "up", "--duration", "6", "--redis-port", str(port)],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any("embedded Redis 7.4 + timeseries" in line for line in lines)
    stopped = [line.split()[1] for line in lines if " stopped" in line]
    assert stopped[-1] == "redis", stopped
    if "gateway" in stopped and "logger" in stopped:
        assert stopped.index("gateway") < stopped.index("logger")
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()
