"""``python -m spreadbus web`` as a real process: serves the API on its port, beats a
heartbeat (``--check``), refuses raw traversal paths, stops with exit 0 on SIGTERM; refuses
to start exposed without a password (exit 2) or on a port in use (exit 1)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from spreadbus.bus import keys
from spreadbus.proc import free_port, terminate

COMMAND = [sys.executable, "-m", "spreadbus", "web"]


def _wait(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {within} s"
        time.sleep(0.05)


def _env(redis_url: str, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SPREADBUS_REDIS_URL": redis_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_WEB_PORT": str(port),
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        **extra,
    }


def _raw_status(port: int, path: str) -> int:
    """A request with the path exactly as written (http.client does not normalise it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_web_process_serves_beats_and_stops_on_sigterm(
    redis_url: str, data_dir: Path, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(redis_url, data_dir, port)
    (tmp_path / "secret.parquet").write_bytes(b"SECRET")

    def check() -> int:
        result = subprocess.run([*COMMAND, "--check"], env=env, capture_output=True, check=False)
        return result.returncode

    console = tmp_path / "web.err"
    with console.open("wb") as stderr:
        process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, console.read_text()
                return False

        _wait(answers, 30, "an answer on /api/health")
        _wait(lambda: sync_redis.exists(keys.health("web")) == 1, 10, "a heartbeat")
        assert check() == 0
        health = httpx.get(f"{base}/api/health").json()
        web = health["services"]["web"]
        assert web["status"] == "healthy"
        assert web["pid"] == process.pid
        assert web["fields"]["url"] == base
        assert health["services"]["gateway"]["status"] == "down"

        for path in (
            "/api/archive/../../etc/passwd",
            "/api/archive/%2e%2e/%2e%2e/etc/passwd",
            "/api/archive/%2e%2e/%2e%2e/secret.parquet",
            "/api/archive/..%2f..%2fsecret.parquet",
            "/api/archive//etc/passwd",
        ):
            assert _raw_status(port, path) == 404, path
        assert httpx.get(f"{base}/api/openapi.json").status_code == 200
    finally:
        code = terminate(process, 30)

    output = console.read_text()
    assert code == 0, output
    assert "Traceback" not in output
    assert "listening" in output
    assert "stopped" in output
    assert check() == 1  # the heartbeat went away with the process


def test_web_refuses_exposure_without_password_and_a_busy_port(
    redis_url: str, data_dir: Path
) -> None:
    env = _env(redis_url, data_dir, free_port())
    exposed = subprocess.run(
        [*COMMAND, "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert exposed.returncode == 2
    assert exposed.stderr.count("\n") == 1
    assert "web_password" in exposed.stderr
    assert "SPREADBUS_WEB_PASSWORD" in exposed.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = subprocess.run(
            COMMAND, env=_env(redis_url, data_dir, port), capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
    assert taken.returncode == 1
    assert taken.stderr.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
