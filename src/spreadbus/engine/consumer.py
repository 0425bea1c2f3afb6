"""Reading the tick streams: where to start, and blocking micro-batch reads from there.

**Where the engine is** lives in the hash ``keys.engine_cursor()``: ``<stream key>`` = the
last id processed, and one field ``#counts`` = JSON ``{stream: [entries processed, bad entries
skipped]}``, counted from the first entry the engine read of each stream. The writer stores
them together with the analytics they produced (one atomic call of the engine's Redis
Function on a single node; on a cluster, right after them, and always in one HSET, so ids and
counts never disagree), so after a crash the engine resumes exactly after the last batch whose
effects were stored: nothing processed twice, nothing skipped, and the counts say so.

**Where a stream starts** (:func:`plan_start`): after the cursor's id if there is one;
otherwise after the stream's newest id (history comes from the price series instead, which is
much faster than re-reading minutes of entries), or from the beginning of a stream that does
not exist yet. Such a start is stored at once, before anything is read: an engine stopped
before its first batch must not start again at a newer head and skip what came in between.
A real stream's grid is warmed from the price series up to the trade millisecond it resumes
at (see :mod:`spreadbus.engine.warmstart`). If entries after the cursor were trimmed away
before the engine read them (it was down longer than the stream's retention), the start says
so and the warm start reaches up to the first entry still there.

**Reading** (:class:`StreamReader`): on a single node one ``XREAD COUNT n BLOCK ms`` covers
every stream. Redis Cluster refuses a multi-key XREAD across slots (CROSSSLOT), and each
symbol's two streams share one slot (hash tag), so there the engine issues one non-blocking
XREAD per slot concurrently and, when none returned anything, sleeps a little (1 ms growing
to ``block_ms``) before the next round; blocking reads on several connections at once would
hold a batch until the slowest one timed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis.exceptions
from redis.crc import key_slot
from redis.typing import EncodableT, FieldT

from spreadbus.bus import keys, streamid
from spreadbus.bus.connect import AsyncRedis, connect, pipelined, resolve_url
from spreadbus.config import Settings
from spreadbus.engine.core import Entry, StreamPosition

# Entries per stream per read. It bounds a catch-up batch, and with it how long one XREAD
# occupies Redis (~2 us per entry server-side: 52 streams x 250 ~ 25 ms at most), during which
# the gateway's writes wait.
READ_COUNT: Final = 250
BLOCK_MS: Final = 100
ZERO_ID: Final = "0-0"
COUNTS_FIELD: Final = "#counts"

StreamBatch = list[tuple[str, list[Entry]]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cursor_mapping(
    moved: Mapping[str, StreamPosition], counts: Mapping[str, tuple[int, int]]
) -> dict[FieldT, EncodableT]:
    """The cursor-hash fields of one write: each moved stream's last id, and the counts of
    every stream in one field (one HSET, so they are stored together)."""
    out: dict[FieldT, EncodableT] = {stream: p.last_id for stream, p in moved.items()}
    out[COUNTS_FIELD] = orjson.dumps(counts)
    return out


async def load_cursor(client: AsyncRedis, key: str | None = None) -> dict[str, StreamPosition]:
    """The cursor hash ``key`` (default :func:`keys.engine_cursor`; one share's when the
    engines split the pairs, :func:`keys.engine_share_cursor`)."""
    raw: Any = await client.hgetall(key or keys.engine_cursor())
    fields = {_text(k): v for k, v in raw.items()}
    counts: dict[str, list[int]] = {}
    if COUNTS_FIELD in fields:
        counts = orjson.loads(fields.pop(COUNTS_FIELD))
    out: dict[str, StreamPosition] = {}
    for stream, value in fields.items():
        processed, bad = counts.get(stream, (0, 0))
        out[stream] = StreamPosition(_text(value), int(processed), int(bad))
    return out


@dataclass(frozen=True, slots=True)
class StreamHead:
    """What XINFO STREAM says about a stream's ends."""

    last_id: str  # last-generated-id: kept even when every entry has been trimmed
    first_id: str | None  # oldest entry still there
    max_deleted_id: str  # newest id ever trimmed or deleted


async def stream_heads(client: AsyncRedis, streams: Sequence[str]) -> dict[str, StreamHead]:
    """Heads of the streams that exist (one round trip). The replies are hiredis's, paired up
    here: redis-py's pipeline packing and XINFO parsing took 3 ms for 52 streams, and the
    engine asks every second (its report's lag)."""
    replies = await pipelined(client, [("XINFO", "STREAM", stream) for stream in streams])
    out: dict[str, StreamHead] = {}
    for stream, reply in zip(streams, replies, strict=True):
        if isinstance(reply, Exception):
            if isinstance(reply, redis.exceptions.ResponseError):
                continue  # no such stream yet
            raise reply
        # a flat [name, value, ...] list; a cluster's pipeline has made it a dict already
        if isinstance(reply, dict):
            info = {_text(k): v for k, v in reply.items()}
        else:
            info = {_text(k): v for k, v in zip(reply[::2], reply[1::2], strict=True)}
        first = info.get("first-entry")
        out[stream] = StreamHead(
            last_id=_text(info.get("last-generated-id", ZERO_ID)),
            first_id=_text(first[0]) if first else None,
            max_deleted_id=_text(info.get("max-deleted-entry-id", ZERO_ID)),
        )
    return out


@dataclass(frozen=True, slots=True)
class StreamStart:
    position: StreamPosition  # read after position.last_id
    warm_until_ms: int | None  # real stream: grid history up to this trade ms (inclusive)
    trimmed_after: str | None = None  # entries after this id were trimmed before being read


def plan_start(stream: str, saved: StreamPosition | None, head: StreamHead | None) -> StreamStart:
    """Where to resume one stream (module docstring)."""
    is_ghost = stream.endswith(keys.GHOST_SUFFIX)
    if saved is None:
        if head is None:
            return StreamStart(StreamPosition(ZERO_ID), None)
        warm = None if is_ghost else streamid.ms_of(head.last_id)
        return StreamStart(StreamPosition(head.last_id), warm or None)
    warm = None if is_ghost else streamid.ms_of(saved.last_id) or None
    if head is not None and streamid.parse(head.max_deleted_id) > streamid.parse(saved.last_id):
        # entries after the cursor are gone; the price series still has their trades
        if head.first_id is not None:
            resume = streamid.before(head.first_id)
            warm = None if is_ghost else max(streamid.ms_of(resume), streamid.ms_of(saved.last_id))
        else:
            resume = head.last_id
            warm = None if is_ghost else streamid.ms_of(head.last_id)
        position = StreamPosition(resume, saved.processed, saved.bad)
        return StreamStart(position, warm, trimmed_after=saved.last_id)
    return StreamStart(saved, warm)


def slot_groups(streams: Iterable[str]) -> list[list[str]]:
    """Streams grouped by cluster slot (a symbol's real and ghost stream share one)."""
    groups: dict[int, list[str]] = {}
    for stream in streams:
        groups.setdefault(key_slot(stream.encode()), []).append(stream)
    return list(groups.values())


def _real_first(batch: StreamBatch) -> StreamBatch:
    # ghost trades are matched against real ones read in the same batch
    return sorted(batch, key=lambda item: item[0].endswith(keys.GHOST_SUFFIX))


def raw_reply(response: Any, **options: Any) -> Any:
    """XREAD reply callback that keeps the reply as parsed by hiredis (no dict per entry)."""
    return response


def reader_client(settings: Settings) -> AsyncRedis:
    """A connection of its own for the blocking reads, speaking RESP2 and answering XREAD
    raw: each entry stays a flat ``[name, value, ...]`` list (see
    :mod:`spreadbus.engine.entries`). At tens of thousands of entries per second this halves
    the client's share of a read (no dict per entry; RESP2 replies parse ~25% faster)."""
    url = resolve_url(settings)
    client = connect(settings, f"{url}{'&' if '?' in url else '?'}protocol=2")
    client.set_response_callback("XREAD", raw_reply)
    return client


class StreamReader:
    def __init__(
        self,
        client: AsyncRedis,
        *,
        grouped: bool = False,
        count: int = READ_COUNT,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.client = client
        self.grouped = grouped
        self.count = count
        self.block_ms = block_ms
        self._idle_sleep = 0.001
        self._names: dict[str, bytes] = {}  # stream keys, encoded once

    async def read(self, positions: Mapping[str, str], block: bool = True) -> StreamBatch:
        """Entries after each stream's position, up to ``count`` per stream; waits up to
        ``block_ms`` for the first one when ``block`` and nothing is waiting."""
        if not positions:
            if block:
                await asyncio.sleep(self.block_ms / 1000)
            return []
        if not self.grouped:
            return _real_first(await self._xread(list(positions), positions, block))
        replies = await asyncio.gather(
            *(self._xread(group, positions, False) for group in slot_groups(positions))
        )
        batch = [item for reply in replies for item in reply]
        if batch:
            self._idle_sleep = 0.001
        elif block:
            await asyncio.sleep(self._idle_sleep)
            self._idle_sleep = min(self._idle_sleep * 2, self.block_ms / 1000)
        return _real_first(batch)

    async def _xread(
        self, streams: list[str], positions: Mapping[str, str], block: bool
    ) -> StreamBatch:
        # bytes pass through redis-py's encoder untouched: a read names ~50 streams and ids
        args: list[Any] = [b"COUNT", self.count]
        if block:
            args += [b"BLOCK", self.block_ms]
        names = self._names
        args.append(b"STREAMS")
        args += [names.get(s) or names.setdefault(s, s.encode()) for s in streams]
        args += [positions[s].encode() for s in streams]
        return _parse(await self.client.execute_command("XREAD", *args))


def _parse(reply: Any) -> StreamBatch:
    """Any XREAD reply shape: RESP3 map or RESP2 list, raw or parsed by redis-py."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(_text(stream), entries) for stream, entries in pairs]
