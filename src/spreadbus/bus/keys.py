"""Every Redis key and channel name spreadbus uses, and nowhere else.

The schema is ARCHITECTURE.md section 3. The ``{...}`` in the contract are real Redis Cluster
hash tags: ``stream:ticks:{BTCUSDT}``, ``ts:price:{BTCUSDT}`` and ``state:analytics:{BTCUSDT}``
all hash on ``BTCUSDT`` and so share one slot, which is what lets one pipeline, one TS.MADD or
one multi-stream XREAD touch all keys of a symbol on a cluster without CROSSSLOT errors.
"""

from __future__ import annotations

from typing import Final, Literal

CandleField = Literal["open", "high", "low", "close", "volume"]
CANDLE_FIELDS: Final[tuple[CandleField, ...]] = ("open", "high", "low", "close", "volume")

CHANNEL_ALERTS: Final = "channel:alerts"
CHANNEL_LOGS: Final = "channel:logs"
CHANNEL_CONFIG: Final = "channel:config"

# The log events of every service, durable (~1 day): the CentralLogger reads them with a
# consumer group, so what arrives while it restarts is written when it is back.
LOG_STREAM: Final = "stream:logs"
LOG_STREAM_FIELD: Final = "event"  # each entry holds one LogEvent as JSON under this field
LOG_GROUP: Final = "logger"

CONFIG_PAIRS: Final = "config:pairs"
CONFIG_ALERTS: Final = "config:alerts"

GHOST_SUFFIX: Final = ":GHOST"


def tick_stream(symbol: str) -> str:
    """Normalized real ticks of one symbol (~5 min)."""
    return f"stream:ticks:{{{symbol}}}"


def ghost_stream(symbol: str) -> str:
    """The simulated second venue's ticks of one symbol (~5 min)."""
    return f"stream:ticks:{{{symbol}}}{GHOST_SUFFIX}"


def stream_symbol(key: str | bytes) -> tuple[str, bool]:
    """Inverse of :func:`tick_stream` / :func:`ghost_stream`: ``(symbol, is_ghost)``."""
    text = key.decode() if isinstance(key, bytes) else key
    is_ghost = text.endswith(GHOST_SUFFIX)
    return text[text.index("{") + 1 : text.index("}")], is_ghost


def price_series(symbol: str) -> str:
    """Raw tick-level last price per millisecond (1 h); also the source of the close candle."""
    return f"ts:price:{{{symbol}}}"


def candle_series(symbol: str, field: CandleField) -> str:
    """1-minute candle field, written by a compaction rule (24 h)."""
    return f"ts:ohlc:{{{symbol}}}:1m:{field}"


def candle_series_pattern(field: CandleField) -> str:
    """SCAN pattern matching :func:`candle_series` of every symbol (``{`` is no glob
    character: it matches itself)."""
    return f"ts:ohlc:{{*}}:1m:{field}"


def candle_source_series(symbol: str, field: CandleField) -> str:
    """Per-millisecond pre-aggregate feeding one candle rule (open/high/low/volume).

    A TimeSeries keeps one sample per millisecond, so a single price series cannot give an
    exact open, high, low and volume when many trades share a millisecond. Each of these
    series keeps the right per-millisecond aggregate (FIRST, MAX, MIN, SUM duplicate policy)
    and its compaction rule turns it into the exact candle field. Close comes from
    :func:`price_series` (LAST policy).
    """
    if field == "close":
        return price_series(symbol)
    return f"ts:tick:{{{symbol}}}:{field}"


def analytics_series(pair: str, metric: str) -> str:
    """Per-pair analytics history on the 1 s grid, for charts."""
    return f"ts:analytics:{{{pair}}}:{metric}"


def funding_series(symbol: str) -> str:
    """Funding rate per markPrice update (fraction per funding interval), 24 h."""
    return f"ts:funding:{{{symbol}}}"


def analytics_state(name: str) -> str:
    """Latest snapshot hash of a symbol (``BTCUSDT``) or a pair (``ETHUSDT/BTCUSDT``)."""
    return f"state:analytics:{{{name}}}"


def feed_state(symbol: str) -> str:
    """The gateway's per-symbol feed figures (last trade, tick rate, latencies, ghost price,
    mark price and funding); the gateway is its only writer."""
    return f"state:feed:{{{symbol}}}"


def health(service: str) -> str:
    """Heartbeat hash of one service; expires when the service stops beating."""
    return f"state:health:{{{service}}}"


def recent_alerts() -> str:
    """Capped list of the latest alert events (JSON), newest first, for the dashboard."""
    return "state:alerts:recent"


def engine_cursor() -> str:
    """Hash stream key -> last stream id the QuantEngine has fully processed."""
    return "state:engine:cursor"


def alert_state() -> str:
    """Hash rule|pair -> firing state, so a restarted engine does not re-fire."""
    return "state:engine:alerts"


def archivist_cursor() -> str:
    """Hash stream key -> last stream id safely spooled to disk by the Archivist."""
    return "state:archivist:cursor"


def analytics_series_1m(pair: str, metric: str) -> str:
    """1-minute average of :func:`analytics_series` (24 h), made by a compaction rule.

    Same hash tag as its source, as RedisTimeSeries requires of a rule's two ends on a cluster.
    """
    return f"ts:analytics:{{{pair}}}:{metric}:1m"


def share_tag(kind: str) -> str:
    """The hash tag of a share group's coordination keys: its leases, its member set and the
    engine shares' cursors all hash on ``kind`` and so live in one slot. That is what lets the
    engine's one Redis Function call check a share's lease and store its cursor atomically on a
    cluster too (the fence: :mod:`spreadbus.engine.writer`). One slot per group is no hot spot:
    it sees a lease renewal per share every 0.4 s and a cursor write per engine batch."""
    return f"{{{kind}}}"


def lease(kind: str, shard: int) -> str:
    """Who holds share ``shard`` of ``kind`` (``gateway``: symbols, ``engine``: pairs): the
    owner's id, with a TTL its owner renews (:mod:`spreadbus.bus.lease`). Hash tag:
    :func:`share_tag`."""
    return f"lease:{share_tag(kind)}:{shard}"


def lease_members(kind: str) -> str:
    """Sorted set owner -> expiry ms of the processes sharing ``kind``, for a fair split."""
    return f"lease:{share_tag(kind)}:members"


def lease_shards(kind: str) -> str:
    """How many shares the processes of ``kind`` split into (each member writes it), so a
    reader (``/api/health``) can name the shares nobody holds."""
    return f"lease:{share_tag(kind)}:shards"


def engine_share_cursor(shard: int, shards: int) -> str:
    """The cursor (see :func:`engine_cursor`) of one share of the pairs when ``shards``
    engines split the pairs: the share's pairs resume from it after a takeover. The count is
    part of the name: with another count the shares hold other pairs. In the slot of the
    share's :func:`lease` (:func:`share_tag`), so a batch's cursor is stored only while the
    lease is the writer's, on a cluster as on a single node."""
    return f"state:engine:cursor:{share_tag('engine')}:{shard}/{shards}"


def legacy_engine_share_cursor(shard: int, shards: int) -> str:
    """Where :func:`engine_share_cursor` was kept before it moved into the lease's slot: read
    once and moved (:meth:`spreadbus.engine.writer.SnapshotWriter.prepare`)."""
    return f"state:engine:cursor:{shard}/{shards}"
