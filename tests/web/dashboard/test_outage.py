"""An open page through a Redis outage and a web restart: it says so, then recovers by
itself, with no reload (a real Redis stopped and started, a real web process killed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.proc import free_port, terminate

from .conftest import UI_MS, UI_S, Console, _env, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _web(redis_url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "spreadbus", "web", "--redis-url", redis_url,
        "--data-dir", str(data_dir), "--port", str(port),
    ]  # fmt: skip
    return subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_redis_outage_and_web_restart_recover_without_reload(
    tmp_path: Path, page: tuple[Any, Console]
) -> None:
    tab, _ = page
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())
    server.start()
    port = free_port()
    web = _web(server.url, tmp_path, port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/api/health").status_code == 200, 60, "the web")
        tab.goto(f"{base}/system")
        services = tab.locator("#sys-services")
        wait_for(lambda: f"{web.pid}" in services.inner_text(), UI_S, "the web's own heartbeat")
        assert tab.locator("#redis-warning").count() == 0

        server.stop()
        tab.wait_for_selector("#redis-warning", timeout=UI_MS)
        screenshot(tab, "redis-down")
        server.start()
        tab.wait_for_selector("#redis-warning", state="detached", timeout=UI_MS)

        navigations: list[str] = []
        tab.on("framenavigated", lambda frame: navigations.append(frame.url))
        terminate(web, 15)
        web = _web(server.url, tmp_path, port)
        wait_for(lambda: f"{web.pid}" in services.inner_text(), 60, "the restarted web's pid")
        assert navigations == []
    finally:
        terminate(web, 15)
        server.stop()
