"""Waiting in tests for something another process or task will make true: poll, with a deadline
(never sleep-then-hope)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

POLL_S = 0.05


async def until(condition: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """The first true value of ``condition``, polled every 50 ms; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
