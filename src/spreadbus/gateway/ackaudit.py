"""Acknowledged writes that vanished: what the gateway wrote against what the bus still holds.

Redis replicates asynchronously, so when a primary dies its replica can be promoted without the
last writes the primary had acknowledged. The gateway is the one process that knows what it
wrote: :class:`AckAudit` keeps, per symbol, a compact record of the ticks acknowledged in the
last :data:`WINDOW_S` (one entry per :data:`BUCKET_S` of written batches: first and last tick
and the number of ticks). The ingest :meth:`~AckAudit.take` s that record (what had been
acknowledged so far; a tick is audited once) when a write fails, and audits it once writes
succeed again; and on a cluster also when the node serving one of its symbols changes
(:meth:`~AckAudit.moved`, checked once a second), because redis-py's cluster client can ride a
failover out by itself, the write waiting and then succeeding on the promoted replica, so the
ingest sees no failure at all. :meth:`~AckAudit.missing` says how many of those ticks the
streams no longer hold; the ingest reports them (``acked_lost`` in health, an error in the
log).

Why counting is exact: a symbol is written by one gateway (its share's holder), in stream-id
order, so between the first and the last acknowledged id of the window the stream holds only
what this gateway acknowledged there; the ticks of a failed write come after the last
acknowledged one. Not covered: writes acknowledged more than :data:`WINDOW_S` before the
failure was seen (replication lag is milliseconds; a partition that hides a dead primary
longer than that is reported only partly).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.ticks import SymbolBatch

WINDOW_S: Final = 10.0
# Batches acknowledged within this long of a bucket's first are recorded as that bucket. One
# record per batch was 70,000 objects alive at 10k ticks/s over 50 symbols, every one of them
# traversed by the cyclic collector (a 14 ms pause measured in the gateway).
BUCKET_S: Final = 0.1
MAX_BUCKETS: Final = 4096  # per symbol: bounds memory at any rate (oldest dropped first)
MOVED_EVERY_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class Written:
    """Acknowledged ticks of one symbol, following each other in its stream."""

    at_s: float  # monotonic time of the last acknowledgement
    first_id: str  # stream entry ids
    last_id: str
    ticks: int


# A bucket while it is recorded: a tuple of atoms and ticks (themselves tuples of atoms), which
# the collector stops tracking, rather than an object it would traverse on every collection.
_Bucket = tuple[float, float, Tick, Tick, int]  # first and last ack (monotonic s), ticks, count


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class AckAudit:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._written: dict[str, deque[_Bucket]] = {}
        self._nodes: dict[str, str] = {}  # symbol -> the cluster node serving its stream
        self._moved_checked_s = 0.0

    def acked(self, batches: Mapping[str, SymbolBatch]) -> None:
        """Record batches Redis acknowledged (their real ticks; ghosts are simulated)."""
        now = time.monotonic()
        for symbol, batch in batches.items():
            ticks = batch.ticks
            if not ticks:
                continue
            record = self._written.get(symbol)
            if record is None:
                record = self._written[symbol] = deque(maxlen=MAX_BUCKETS)
            elif now - record[-1][0] < BUCKET_S:  # the symbol's ticks follow each other
                start, _, first, _, count = record[-1]
                record[-1] = (start, now, first, ticks[-1], count + len(ticks))
                continue
            record.append((now, now, ticks[0], ticks[-1], len(ticks)))
            while record[0][1] < now - self.window_s:
                record.popleft()

    def take(self) -> dict[str, list[Written]]:
        """What was acknowledged in the window up to now, to audit; forgotten here, so no
        tick is audited (and no loss counted) twice."""
        since = time.monotonic() - self.window_s
        taken = {
            symbol: [
                Written(last_s, first.stream_id, last.stream_id, count)
                for _, last_s, first, last, count in record
                if last_s >= since
            ]
            for symbol, record in self._written.items()
            if record
        }
        self._written.clear()
        return taken

    def moved(self, client: AsyncRedis) -> bool:
        """On a cluster, at most once a second: has the node serving a recorded symbol's
        stream changed since the last look (a failover, or a resharding)? In memory only:
        the client's own slot map."""
        now = time.monotonic()
        if not isinstance(client, AsyncRedisCluster) or now - self._moved_checked_s < MOVED_EVERY_S:
            return False
        self._moved_checked_s = now
        changed = False
        for symbol in self._written:
            slot = key_slot(keys.tick_stream(symbol).encode())
            node = client.nodes_manager.get_node_from_slot(slot)
            name = node.name if node is not None else ""
            changed |= self._nodes.get(symbol, name) != name
            self._nodes[symbol] = name
        return changed

    @staticmethod
    async def missing(client: AsyncRedis, snapshot: Mapping[str, list[Written]]) -> dict[str, int]:
        """Per symbol, how many of the snapshot's acknowledged ticks its stream lacks now
        (symbols that lack none are left out)."""
        lost: dict[str, int] = {}
        for symbol, written in snapshot.items():
            if not written:
                continue
            first = min((w.first_id for w in written), key=_id_key)
            last = max((w.last_id for w in written), key=_id_key)
            present: Any = await client.xrange(keys.tick_stream(symbol), first, last)
            missing = sum(w.ticks for w in written) - len(present)
            if missing > 0:
                lost[symbol] = missing
        return lost
