"""A real ``spreadbus web`` process (with its own embedded Redis) for benchmarks that measure
it from outside, and its memory: the kernel's peak resident set (``VmHWM``), reset before each
case through ``/proc/<pid>/clear_refs`` so one process serves a small and a large case."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.proc import free_port, terminate


@dataclass(frozen=True, slots=True)
class Web:
    url: str
    pid: int
    redis_url: str
    data_dir: Path

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def reset_peak(self) -> None:
        """From now on, VmHWM is the peak since this call (Linux >= 4.0)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        return _status_kb(self.pid, "VmHWM") / 1024


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@contextlib.contextmanager
def running_redis(prefix: str = "spreadbus-bench-") -> Iterator[tuple[str, Path]]:
    """An embedded Redis and a temporary data folder (removed afterwards): ``(url, folder)``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data_dir = Path(tmp)
        server = EmbeddedRedis(data_dir / "bench-redis", port=free_port())
        server.start()
        try:
            yield server.url, data_dir
        finally:
            server.stop()


@contextlib.contextmanager
def web_process(redis_url: str, data_dir: Path, env: dict[str, str] | None = None) -> Iterator[Web]:
    """``spreadbus web`` on a free loopback port, until the block ends."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPREADBUS_")}
    argv = [
        sys.executable, "-m", "spreadbus", "web", "--redis-url", redis_url,
        "--data-dir", str(data_dir), "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, env=clean | (env or {}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("spreadbus web did not come up")
            time.sleep(0.25)
        yield Web(url, process.pid, redis_url, data_dir)
    finally:
        terminate(process, 30)


@contextlib.contextmanager
def running_web(
    env: dict[str, str] | None = None, prefix: str = "spreadbus-bench-"
) -> Iterator[Web]:
    """Embedded Redis and ``spreadbus web`` in a temporary data folder."""
    with (
        running_redis(prefix) as (redis_url, data_dir),
        web_process(redis_url, data_dir, env) as web,
    ):
        yield web
