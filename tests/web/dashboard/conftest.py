"""Fixtures of the dashboard's browser tests: the whole stack (`spreadbus up --source sim`:
embedded Redis, gateway, engine, logger, archivist, web) once per session, and Debian's
headless Chromium driven by playwright. Screenshots go to ``build/screenshots/``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from spreadbus.proc import free_port, terminate

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[3] / "build" / "screenshots"
PAIR = "ETHUSDT/BTCUSDT"
READY_TIMEOUT_S = 120.0
# Upper bounds for what a page must show; tests go on as soon as it does. Generous: a loaded
# 2-core machine runs Redis, five services and Chromium at once.
UI_S = 45.0
UI_MS = int(UI_S * 1000)


@dataclass
class Stack:
    url: str
    redis_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SPREADBUS_")}


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as exc:  # not ready yet: keep polling
            last_error = exc
            result = None
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    port = free_port()
    argv = [
        sys.executable, "-m", "spreadbus", "up", "--source", "sim", "--data-dir", str(data_dir),
        "--port", str(port), "--redis-port", str(free_port()), "--duration", "900",
    ]  # fmt: skip
    log = (data_dir / "up.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env())
    url = f"http://127.0.0.1:{port}"
    try:
        redis_url = wait_for(
            lambda: (data_dir / "redis" / "url").read_text().strip(), 60, "the embedded Redis"
        )
        client = redis.Redis.from_url(redis_url, decode_responses=True)

        def warmed_up() -> bool:
            snap = client.hgetall(f"state:analytics:{{{PAIR}}}")
            ok = httpx.get(f"{url}/api/health", timeout=2).status_code == 200
            warm = all(snap.get(f, "nan") != "nan" for f in ("beta", "adf_pvalue"))
            return ok and warm

        wait_for(warmed_up, READY_TIMEOUT_S, "a warmed-up pair snapshot", every=1.0)
        client.close()
        yield Stack(url, redis_url, data_dir, process)
    finally:
        terminate(process, 30)
        log.close()


@dataclass
class Console:
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not longer: playwright's sync API keeps an event loop
    running in this thread while it is open, and the suite's asyncio tests need the thread's
    loop to themselves."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Console]]:
    """A fresh tab that records every console error and page error."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    console = Console()
    tab.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: console.errors.append(f"pageerror: {e}"))
    yield tab, console
    context.close()


def screenshot(tab: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
