"""``spreadbus up``: real processes, a real crash, a real kill -9 of the supervisor."""

import os
import signal
import subprocess
import sys
import threading
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


def _up_env(redis_url: str | None, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SOURCE": "sim",
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.3",
        "SPREADBUS_WEB_PORT": str(free_port()),
        **extra,
    }
    if redis_url:
        env["SPREADBUS_REDIS_URL"] = redis_url
    return env


def test_up_stops_a_child_that_exits_2_and_says_why(
    redis_url: str, sync_redis: redis.Redis, data_dir: Path
) -> None:
    """An exposed web without a password is a bad setting (exit 2): restarting cannot help."""
    env = _up_env(redis_url, data_dir, SPREADBUS_WEB_HOST="0.0.0.0")
    up = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "up", "--duration", "120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(up.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("exited with code 2" in ln for ln in lines), 60, "web's exit")
        # a restart would come 1 s later; the status line must say it stays stopped
        wait_for(lambda: any("web stopped (bad setting)" in ln for ln in lines), 30, "status")
    finally:
        up.terminate()
        up.wait(60)
        reader.join(10)
        if up.stdout is not None:
            up.stdout.close()
    given_up = [ln for ln in lines if "web" in ln and "exited with code 2" in ln]
    assert len(given_up) == 1, lines
    assert "not restarting" in given_up[0] and "password" in given_up[0]
    assert not any(ln.split()[1:3] == ["web", "started,"] for ln in lines[1:] if "pid" in ln
                   and lines.index(ln) > lines.index(given_up[0]))  # fmt: skip


def test_up_restarts_its_embedded_redis_and_the_services_come_back(data_dir: Path) -> None:
    port = free_port()
    env = _up_env(None, data_dir)
    up = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "up", "--duration", "90", "--redis-port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = wait_for(lambda: _read(data_dir / "redis" / "url"), 60, "the embedded Redis")
        client = redis.Redis.from_url(url)
        first = wait_for(lambda: _pid_of_redis(client), 30, "the Redis pid")
        wait_for(lambda: gateway_pid(client), 30, "the gateway's heartbeat")
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (p := _pid_of_redis(client)) not in (None, first) and p, 30,
                          "a restarted Redis")  # fmt: skip
        assert alive(second)

        def all_running() -> bool:
            try:  # a Redis still loading its AOF answers BUSY LOADING: not back yet
                states = [client.hget(keys.health(n), "status") for n in ("gateway", "engine")]
            except redis.exceptions.BusyLoadingError:
                return False
            return states == [b"running", b"running"]

        wait_for(all_running, 30, "gateway and engine running again")
    finally:
        up.terminate()
        output, _ = up.communicate(timeout=60)
    assert "redis    exited with code -9; restarting on its files" in output, output
    assert "redis    restarted at" in output


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _pid_of_redis(client: redis.Redis) -> int | None:
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None


def test_up_refuses_an_external_redis_without_timeseries_in_one_line(
    data_dir: Path, tmp_path: Path
) -> None:
    from spreadbus.bus.embedded import binary, server_env
    from spreadbus.proc import terminate

    port = free_port()
    plain = subprocess.Popen(
        [str(binary("redis-server")), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        env=server_env(), stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: _pinged(client), 20, "the plain Redis")
        done = subprocess.run(
            [sys.executable, "-m", "spreadbus", "up", "--duration", "30"],
            env=_up_env(f"redis://127.0.0.1:{port}/0", data_dir),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        terminate(plain, 10)
    assert done.returncode == 1, done.stdout
    problem = [ln for ln in done.stdout.splitlines() if "TimeSeries" in ln]
    assert len(problem) == 1 and "has no TimeSeries module" in problem[0]
    assert "started" not in done.stdout and "Traceback" not in done.stdout + done.stderr


def _pinged(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_a_service_started_by_hand_on_a_stale_url_file_says_so(data_dir: Path) -> None:
    """The url file of an embedded Redis that was killed with -9: nothing listens there."""
    (data_dir / "redis").mkdir()
    (data_dir / "redis" / "url").write_text(f"redis://default:pw@127.0.0.1:{free_port()}/0\n")
    env = {**os.environ, "SPREADBUS_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "spreadbus", "engine"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "stale" in done.stderr and "nothing listens at" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
