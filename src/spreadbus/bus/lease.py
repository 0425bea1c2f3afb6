"""Shares of work split between processes through leases in Redis.

``lease:{kind}:{shard}`` holds the id of the process that owns share ``shard`` (of ``shards``)
of ``kind`` (``engine``: pairs, ``gateway``: symbols), with a TTL. Its owner renews it every
:attr:`ShareGroup.interval_s`; a process that stops renewing (killed, frozen, cut off from
Redis) loses the share when the TTL runs out, and a survivor takes it at its next step. So a
share is served again within ``ttl_s + interval_s`` of its owner's death, plus the time the new
owner needs to start serving it.

Renewing and releasing check the owner inside Redis (one Lua call on one key, so it works on a
cluster too): a process never extends or deletes a lease another process holds by now.

Fair split: each process also refreshes its entry in ``lease:{kind}:members`` (a sorted set of
owner -> expiry ms; an entry stays :data:`FORGET_S` after it expired, so a process that died
is still seen, as gone, by :func:`group_view`) and aims at ``ceil(shards / live members)``
shares. A process holding more
gives the surplus up (after stopping its work on it: :meth:`ShareGroup.release`), one holding
fewer takes free shares. A process started by hand on another machine therefore joins the
group and gets its part within a few steps, and when one leaves, the others take its shares.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis

TTL_S: Final = 2.0
INTERVAL_S: Final = 0.4
FORGET_S: Final = (
    60.0  # a member that stopped renewing is listed this long (health), then forgotten
)

_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def share_of(name: str, shards: int) -> int:
    """The share a pair or symbol belongs to: stable across processes, machines and restarts
    (crc32, not Python's salted ``hash``)."""
    return zlib.crc32(name.encode()) % shards


def member_name(kind: str, instance: str = "") -> str:
    """The heartbeat name of a group's process: ``engine``, or ``engine-<instance>``."""
    return f"{kind}-{instance}" if instance else kind


def owner_id(name: str = "") -> str:
    """This process, unique even when a pid is reused: ``host:pid:random``, after
    ``<name>@`` when given (its heartbeat name, so a reader can tell who holds what)."""
    process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return f"{name}@{process}" if name else process


def owner_name(owner: str | bytes) -> str:
    """The heartbeat name in an :func:`owner_id` (the id itself if it names none)."""
    text = owner.decode() if isinstance(owner, bytes) else owner
    return text.split("@", 1)[0] if "@" in text else text


@dataclass(frozen=True, slots=True)
class GroupView:
    """A share group as Redis sees it now (:func:`group_view`)."""

    kind: str
    shards: int
    held: dict[int, str]  # share -> heartbeat name of its holder
    members: dict[str, bool]  # heartbeat name -> still renewing (False: gone, not forgotten)

    @property
    def unheld(self) -> list[int]:
        """Shares nobody serves now (between a death and the takeover, or no process)."""
        return [s for s in range(self.shards) if s not in self.held]


async def group_view(client: AsyncRedis, kind: str) -> GroupView | None:
    """Who holds which share of ``kind``, and which processes are (or were lately) members;
    None when no process of that kind runs shared now (none renewing, no lease held)."""
    async with client.pipeline(transaction=False) as pipe:  # one slot: the kind's tag
        pipe.get(keys.lease_shards(kind))
        pipe.zrange(keys.lease_members(kind), 0, -1, withscores=True)
        shards_text, entries = await pipe.execute()
    if shards_text is None:
        return None
    shards = int(shards_text)
    now_ms = int(time.time() * 1000)
    members: dict[str, bool] = {}
    for owner, expiry_ms in entries:
        name = owner_name(owner)
        members[name] = members.get(name, False) or expiry_ms > now_ms
    owners: Any = await client.mget([keys.lease(kind, s) for s in range(shards)])
    held = {s: owner_name(o) for s, o in enumerate(owners) if o is not None}
    if not held and not any(members.values()):
        return None  # every member left (or died): the kind does not run shared now
    return GroupView(kind, shards, held, members)


@dataclass(slots=True)
class Change:
    """What one :meth:`ShareGroup.step` found."""

    gained: list[int] = field(default_factory=list)  # newly held: start serving them
    lost: list[int] = field(default_factory=list)  # expired or taken: stop serving at once
    surplus: list[int] = field(default_factory=list)  # more than a fair part: stop, release


class ShareGroup:
    """This process's leases among ``shards`` shares of ``kind``."""

    def __init__(
        self,
        client: AsyncRedis,
        kind: str,
        shards: int,
        owner: str | None = None,
        ttl_s: float = TTL_S,
        interval_s: float = INTERVAL_S,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.client = client
        self.kind = kind
        self.shards = shards
        self.owner = owner or owner_id()
        self.ttl_ms = int(ttl_s * 1000)
        self.interval_s = interval_s
        self.held: set[int] = set()
        # where this owner starts looking for free shares: joiners spread out instead of racing
        self._offset = zlib.crc32(self.owner.encode()) % shards

    async def members(self) -> int:
        """Refresh this process's membership; the number of live members (itself included)."""
        now_ms = int(time.time() * 1000)
        key = keys.lease_members(self.kind)
        forget_ms = int(FORGET_S * 1000)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.owner: now_ms + self.ttl_ms})
            pipe.zremrangebyscore(key, "-inf", now_ms - forget_ms)
            pipe.zcount(key, now_ms, "+inf")
            pipe.pexpire(key, forget_ms)
            # readers (health) learn the number of shares here; same slot, same lifetime
            pipe.set(keys.lease_shards(self.kind), self.shards, px=forget_ms)
            replies: Any = await pipe.execute()
        return max(1, int(replies[2]))

    def fair(self, members: int) -> int:
        return math.ceil(self.shards / members)

    async def step(self) -> Change:
        """Renew what is held, then take free shares up to a fair part or name the surplus.
        Redis errors propagate (the caller decides; leases simply expire meanwhile)."""
        change = Change()
        fair = self.fair(await self.members())
        for shard in sorted(self.held):
            renewed: Any = await self.client.eval(
                _RENEW, 1, keys.lease(self.kind, shard), self.owner, self.ttl_ms
            )
            if not int(renewed):
                self.held.discard(shard)
                change.lost.append(shard)
        if len(self.held) > fair:
            change.surplus = sorted(self.held)[fair:]
        for i in range(self.shards):
            if len(self.held) >= fair:
                break
            shard = (self._offset + i) % self.shards
            if shard in self.held:
                continue
            key = keys.lease(self.kind, shard)
            if await self.client.set(key, self.owner, nx=True, px=self.ttl_ms):
                self.held.add(shard)
                change.gained.append(shard)
        return change

    async def release(self, shards: Iterable[int]) -> None:
        """Give shares up (their work already stopped): free for another process at once."""
        for shard in list(shards):
            self.held.discard(shard)
            await self.client.eval(_RELEASE, 1, keys.lease(self.kind, shard), self.owner)

    def keep_alive(self, client: redis.Redis | redis.RedisCluster) -> threading.Event:
        """Renew the held leases from a thread of its own (with a blocking client), so that a
        lease says this *process* is alive: an event loop held up by a long computation or a
        loaded machine keeps its shares instead of losing them to a survivor while it still
        writes; a killed process's thread dies with it, and its leases expire. Set the
        returned event to stop the thread."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.interval_s):
                for shard in list(self.held):
                    with contextlib.suppress(redis.RedisError, OSError):
                        key = keys.lease(self.kind, shard)
                        client.eval(_RENEW, 1, key, self.owner, self.ttl_ms)
            client.close()

        threading.Thread(target=renew, name=f"lease-{self.kind}", daemon=True).start()
        return stop

    async def leave(self) -> None:
        """Release everything and leave the member set (a clean stop)."""
        await self.release(sorted(self.held))
        await self.client.zrem(keys.lease_members(self.kind), self.owner)
