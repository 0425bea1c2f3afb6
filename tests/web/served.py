"""A real ``python -m spreadbus web`` process on the suite's Redis and a data dir, for the
tests that need the API over real HTTP (conformance, upload fuzzing, a kill mid-upload)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from spreadbus.proc import free_port, terminate

COMMAND = [sys.executable, "-m", "spreadbus", "web"]
START_WITHIN_S = 60.0  # a cold start at load average 15 on 2 cores


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    console: Path  # the process's stderr

    def wait_ready(self, within_s: float = START_WITHIN_S) -> None:
        """Poll ``/api/health`` until it answers 200; AssertionError with the console if the
        process exits or the deadline passes."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, f"web exited: {self.console.read_text()}"
            assert time.monotonic() < deadline, f"web not ready within {within_s} s"
            time.sleep(0.05)


def start(redis_url: str, data_dir: Path, port: int, console: Path, **extra: str) -> Served:
    """Start the web process (not waiting for it); ``extra``: more environment."""
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": redis_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_WEB_PORT": str(port),
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        **extra,
    }
    with console.open("ab") as stderr:
        process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    return Served(process, f"http://127.0.0.1:{port}", console)


@contextlib.contextmanager
def serving(redis_url: str, data_dir: Path, console: Path, **extra: str) -> Iterator[Served]:
    """A ready web process on a free port, stopped (SIGTERM, then SIGKILL) afterwards."""
    served = start(redis_url, data_dir, free_port(), console, **extra)
    try:
        served.wait_ready()
        yield served
    finally:
        terminate(served.process, 30)
