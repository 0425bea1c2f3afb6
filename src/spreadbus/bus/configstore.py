"""Runtime configuration in Redis: ``config:pairs`` (a set of ``Y/X``) and ``config:alerts``.

Writers change the key and then announce it on ``channel:config``; every service follows it
with one :class:`ConfigWatcher`. The first service to start seeds ``config:pairs`` from
SPREADBUS_PAIRS; ``--pairs`` typed on a command line replaces it
(:func:`replace_pairs_from_flag`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.exceptions

from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.errors import REDIS_ERRORS
from spreadbus.config import parse_pair, symbols_of

__all__ = ["ConfigWatcher", "load_pairs", "replace_pairs_from_flag", "set_pairs", "symbols_of"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def load_pairs(client: AsyncRedis, defaults: Sequence[str]) -> list[str]:
    """The configured pairs; seeds the set from ``defaults`` if it does not exist yet.

    Entries that are not valid pairs are skipped (a hand-edited set must not stop a service).
    """
    members = await client.smembers(keys.CONFIG_PAIRS)
    if not members:
        if defaults:
            await client.sadd(keys.CONFIG_PAIRS, *defaults)
        return sorted(defaults)
    pairs = []
    for member in members:
        try:
            pairs.append("/".join(parse_pair(_text(member))))
        except ValueError:
            continue
    return sorted(set(pairs))


async def set_pairs(client: AsyncRedis, pairs: Sequence[str]) -> list[str]:
    """Replace the pair set (validated) and announce the change."""
    clean = sorted({"/".join(parse_pair(p)) for p in pairs})
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.CONFIG_PAIRS)
        if clean:
            pipe.sadd(keys.CONFIG_PAIRS, *clean)
        await pipe.execute()
    await client.publish(keys.CHANNEL_CONFIG, b"pairs")
    return clean


async def replace_pairs_from_flag(client: AsyncRedis, pairs: Sequence[str]) -> str | None:
    """``--pairs`` typed on the command line wins over the stored set (the environment's
    default only seeds it): replace it, announce it, and say what was replaced (None when the
    set already held exactly these pairs)."""
    before = await load_pairs(client, ())
    after = await set_pairs(client, pairs)
    if before == after:
        return None
    was = ", ".join(before) if before else "nothing"
    return f"--pairs replaced the stored {keys.CONFIG_PAIRS} ({was}) with {', '.join(after)}"


OnChange = Callable[[], Awaitable[None]]


class ConfigWatcher:
    """The one follower of ``channel:config`` for every service.

    ``on_change`` runs after every announcement, every ``poll_s`` (a message can be missed
    while the connection is down), and after each resubscription (for the same reason). A
    Redis error inside ``on_change`` is retried on the next round; anything else ends the task,
    which the service's health then reports. ``subscribed`` is set while listening.
    """

    def __init__(self, client: AsyncRedis, on_change: OnChange, poll_s: float = 30.0) -> None:
        self.client = client
        self.on_change = on_change
        self.poll_s = poll_s
        self.subscribed = asyncio.Event()
        self.changes = 0
        self.errors = 0

    async def run(self, stop: asyncio.Event) -> None:
        due = time.monotonic() + self.poll_s
        confirmations = 0  # Redis's subscribe replies: redis-py may resubscribe by itself
        pending = False  # a change seen (or possibly missed) and not applied yet
        while not stop.is_set():
            pubsub: Any = self.client.pubsub()
            try:
                await pubsub.subscribe(keys.CHANNEL_CONFIG)
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1)
                    if message is not None and message["type"] == "subscribe":
                        confirmations += 1
                        self.subscribed.set()
                        # resubscribed: what was announced meanwhile is unknown
                        pending = pending or confirmations > 1
                    elif message is not None or time.monotonic() >= due:
                        pending = True
                    if pending:
                        due = time.monotonic() + self.poll_s
                        await self.on_change()
                        pending = False
                        self.changes += 1
            except (
                *REDIS_ERRORS,
                redis.exceptions.ResponseError,
                AttributeError,
                NotImplementedError,
            ):
                # AttributeError: redis-py's pubsub on a dropped cluster node connection;
                # NotImplementedError: a client without Pub/Sub. The poll still runs.
                self.errors += 1
                self.subscribed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                if time.monotonic() >= due and not stop.is_set():
                    with contextlib.suppress(*REDIS_ERRORS, redis.exceptions.ResponseError):
                        due = time.monotonic() + self.poll_s
                        await self.on_change()
                        self.changes += 1
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
