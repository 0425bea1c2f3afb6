"""Runtime configuration in Redis: ``config:pairs`` (a set of ``Y/X``) and ``config:alerts``.

Writers change the key and then announce it on ``channel:config``; every service re-reads on
any message there. The first service to start seeds ``config:pairs`` from SPREADBUS_PAIRS.
"""

from __future__ import annotations

from collections.abc import Sequence

from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis
from spreadbus.config import parse_pair, symbols_of

__all__ = ["load_pairs", "set_pairs", "symbols_of"]


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
