"""A Redis with no background save running, before a measured phase: a rewrite of the AOF or
an RDB save is a forked child, one more busy process on the machine's two cores, and what it
takes shows up as latency of whatever is being measured."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Persistence = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


async def no_background_save(persistence: Persistence, timeout_s: float = 60.0) -> None:
    """Return once ``persistence()`` (``INFO persistence``, from a sync or an async client)
    shows neither an AOF rewrite nor an RDB save in progress, or after ``timeout_s``."""
    for _ in range(max(1, int(timeout_s / 0.1))):
        info = persistence()
        if inspect.isawaitable(info):
            info = await info
        if not info.get("aof_rewrite_in_progress") and not info.get("rdb_bgsave_in_progress"):
            return
        await asyncio.sleep(0.1)
