"""The Archivist's only Redis code: read stream entries, closed candles, analytics samples and
the configured pairs. Everything returned is plain Python (str, int, float)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis.exceptions

from spreadbus.archivist.convert import CandleRow, Sample, join_candles
from spreadbus.archivist.spool import Entry, StreamId, format_id
from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis
from spreadbus.config import parse_pair


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def read_entries(
    client: AsyncRedis, streams: Mapping[str, str], count: int, block_ms: int | None
) -> list[Entry]:
    """XREAD after the given ids (never ``$``); ``block_ms=None`` does not block."""
    response: Any = await client.xread(dict(streams), count=count, block=block_ms)  # type: ignore[arg-type]
    if not response:
        return []
    items: Iterable[Any] = response.items() if isinstance(response, dict) else response
    out: list[Entry] = []
    for item in items:
        stream, entries = item[0], item[1]
        if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], list):
            entries = entries[0]  # RESP3 shape: {stream: [[(id, fields), ...]]}
        name = _text(stream)
        for entry_id, fields in entries:
            decoded = {_text(k): _text(v) for k, v in (fields or {}).items()}
            out.append((name, _text(entry_id), decoded))
    return out


async def ts_range(client: AsyncRedis, key: str, after_ms: int) -> list[Sample]:
    """Samples of a TimeSeries strictly after ``after_ms`` (closed buckets only: no LATEST);
    empty when the series does not exist."""
    try:
        raw: Any = await client.execute_command("TS.RANGE", key, max(after_ms + 1, 0), "+")
    except redis.exceptions.ResponseError:
        return []
    return [(int(ts), float(_text(value))) for ts, value in raw]


async def closed_candles(client: AsyncRedis, symbol: str, after_ms: int) -> list[CandleRow]:
    """Closed 1-minute candles of ``symbol`` that start after ``after_ms``."""
    fields = {
        name: await ts_range(client, keys.candle_series(symbol, name), after_ms)
        for name in keys.CANDLE_FIELDS
    }
    return join_candles(fields)


async def analytics_samples(
    client: AsyncRedis, pair: str, metrics: Sequence[str], after: Mapping[str, int]
) -> dict[str, list[Sample]]:
    """Samples of each metric series of ``pair`` after that series' cursor."""
    return {
        metric: await ts_range(client, keys.analytics_series(pair, metric), after.get(metric, -1))
        for metric in metrics
    }


async def configured_pairs(client: AsyncRedis, fallback: Sequence[str]) -> tuple[str, ...]:
    """Pairs in ``config:pairs`` (normalized ``Y/X``, malformed members skipped), or
    ``fallback`` when the set does not exist."""
    members: Any = await client.smembers(keys.CONFIG_PAIRS)
    if not members:
        return tuple(fallback)
    pairs: list[str] = []
    for member in sorted(_text(m) for m in members):
        try:
            pairs.append("/".join(parse_pair(member)))
        except ValueError:
            continue
    return tuple(pairs) if pairs else tuple(fallback)


# Atomically (one key, so also on a cluster): how many entries were ever added to the stream
# (Redis 7+ ``entries-added``), and how many are still there after the given id (up to a limit).
_POSITION_SCRIPT = """
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local added = -1
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] end
end
local after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]) + 1)
return {added, #after}
"""


async def stream_position(
    client: AsyncRedis, stream: str, after: StreamId, limit: int
) -> tuple[int, int] | None:
    """``(entries ever added, entries after `after` still in the stream)``, or ``None`` when the
    stream does not exist, the server is older than Redis 7, or more than ``limit`` entries
    follow ``after`` (the reader is far behind: ask again later)."""
    try:
        raw: Any = await client.eval(_POSITION_SCRIPT, 1, stream, format_id(after), limit)
    except redis.exceptions.ResponseError:
        return None
    added, unread = int(raw[0]), int(raw[1])
    if added < 0 or unread > limit:
        return None
    return added, unread


async def save_cursor(client: AsyncRedis, cursors: Mapping[str, str]) -> None:
    """Publish the spooled-up-to ids (informational; the durable cursor is on disk)."""
    if cursors:
        mapping: dict[Any, Any] = dict(cursors)
        await client.hset(keys.archivist_cursor(), mapping=mapping)
