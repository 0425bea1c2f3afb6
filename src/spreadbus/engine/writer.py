"""Writing a batch's results: one round trip, and on a single node one atomic unit.

**Single node**: everything a batch produced goes to Redis in one call of the engine's Redis
Function (``bus/lua/engine.lua``): the pairs' snapshot fields (``HSET state:analytics:{PAIR}``),
their chart samples (``TS.MADD``), the symbols' fields, the alerts (``PUBLISH channel:alerts``
and the capped recent list), the alert states, and the stream cursors with their
processed/bad counts. A function runs atomically, like ``MULTI``/``EXEC`` (nothing else runs
in between; the AOF records its effects as one transaction, so a crash keeps all or none of
them), so the cursor never runs ahead of or behind the analytics it produced: after any crash
the engine resumes after the last batch whose effects exist, each entry is counted exactly
once, and an alert is never sent twice. Why a function rather than ``MULTI``: the batch
travels as one JSON argument instead of ~50 commands and ~500 arguments, which redis-py
spends about 5 ms encoding at every batch; the call costs under 1 ms. As in a transaction, a
command Redis refuses (say, a chart sample for a series someone deleted) does not stop the
others: refusals are counted and reported.

**Redis Cluster**: a function call or a transaction cannot span slots, and every pair and
symbol has its own.
The results go first (one pipeline, split per node by the client), the cursor hash after
them. A crash between the two re-reads a batch whose results were already stored; that is
harmless for the analytics (a bar keeps the last price; chart samples overwrite, duplicate
policy LAST; snapshots are overwritten), the counts still commit with the cursor, and the
only possible repeat is an alert of that batch.

**The fence** (engine shares, :mod:`spreadbus.engine.shards`): a process frozen past its
lease's TTL must not store the batch it held when it stopped, because the share's new owner
processes the same entries. On a single node the function checks the lease inside the same
atomic call as everything else. On a cluster the share's cursor lives in its lease's slot
(:func:`keys.share_tag`), so the cursor goes through the same function with the same check:
the cursor and its counts are fenced exactly, and a late batch can never move them. The
results live in the pairs' and symbols' slots and cannot be fenced atomically: the writer
reads the lease just before them and stores nothing if it is gone, which leaves only the
window between that read and the results' arrival; a batch caught in it overwrites a few
snapshot fields and chart samples with values the new owner overwrites at its next batch,
and may send one of its alerts again, but its entries are never counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from spreadbus.bus import keys
from spreadbus.bus.codec import alert_to_json
from spreadbus.bus.connect import AsyncRedis, fcall, on_every_primary
from spreadbus.bus.functions import library_code
from spreadbus.engine.consumer import COUNTS_FIELD, cursor_mapping
from spreadbus.engine.core import StreamPosition, WriteSet
from spreadbus.engine.pairstate import SERIES_FIELDS

SERIES_RETENTION_MS: Final = 3_600_000  # raw 1-second samples: 1 hour
SERIES_1M_RETENTION_MS: Final = 86_400_000  # 1-minute averages: 24 hours
RECENT_ALERTS: Final = 500
SYMBOL_FIELDS: Final = (
    "price", "price_ms", "trade_rate_10s", "volume_60s", "ingest_latency_ms",
    "bus_latency_ms", "basis_bps", "basis_bps_mean", "basis_ms", "engine_updated_ms",
)  # fmt: skip


async def _create_series(client: AsyncRedis, key: str, retention_ms: int, *labels: str) -> None:
    try:
        await client.execute_command(
            "TS.CREATE", key, "RETENTION", retention_ms, "DUPLICATE_POLICY", "LAST",
            "LABELS", *labels,
        )  # fmt: skip
    except redis.exceptions.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


async def ensure_pair_series(client: AsyncRedis, pair: str) -> None:
    """The chart series of a pair, each with its 1-minute compaction, before any sample
    (a rule only sees samples added after it exists; TS.MADD would create a missing series
    with the BLOCK duplicate policy)."""
    for metric in SERIES_FIELDS:
        source = keys.analytics_series(pair, metric)
        target = keys.analytics_series_1m(pair, metric)
        labels = ("pair", pair, "metric", metric)
        await _create_series(client, source, SERIES_RETENTION_MS, *labels, "kind", "analytics")
        await _create_series(
            client, target, SERIES_1M_RETENTION_MS, *labels, "kind", "analytics_1m"
        )
        try:
            await client.execute_command(
                "TS.CREATERULE", source, target, "AGGREGATION", "avg", 60_000
            )
        except redis.exceptions.ResponseError as exc:
            if "already" not in str(exc):  # "the destination key already has a src rule"
                raise


FUNCTION_NAME: Final = "spreadbus_engine_apply"


def _text(value: object) -> str:
    """A field value as redis-py would send it (``repr`` of a float: shortest exact text)."""
    kind = type(value)
    if kind is float:
        return repr(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bytes:
        return value.decode()  # type: ignore[attr-defined, no-any-return]
    return str(value)


def function_call(
    batch: WriteSet, cursor_key: str | None = None, fence: tuple[str, str] | None = None
) -> tuple[list[str], bytes]:
    """The keys and the JSON argument of one :data:`FUNCTION_NAME` call for ``batch``
    (``cursor_key``, ``fence``: see :class:`SnapshotWriter`)."""
    keys_: list[str] = []
    index: dict[str, int] = {}

    def key(name: str) -> int:
        if name not in index:
            keys_.append(name)
            index[name] = len(keys_)  # Lua tables count from 1
        return index[name]

    def flat(mapping: Mapping[Any, object]) -> list[str]:
        return [t for k, v in mapping.items() for t in (_text(k), _text(v))]

    h: list[list[object]] = []
    for pair, fields in batch.pair_fields.items():
        h.append([key(keys.analytics_state(pair)), flat(fields)])
    for symbol, fields in batch.symbol_fields.items():
        h.append([key(keys.analytics_state(symbol)), flat(fields)])
    changed = {k: v for k, v in batch.alert_states.items() if v is not None}
    gone = [k for k, v in batch.alert_states.items() if v is None]
    if changed:
        h.append([key(keys.alert_state()), flat(changed)])
    if batch.positions:  # last: the cursor describes everything above
        cursor = cursor_key or keys.engine_cursor()
        h.append([key(cursor), flat(cursor_mapping(batch.positions, batch.counts))])
    payload: dict[str, object] = {"h": h}
    if fence is not None:
        payload["f"] = [key(fence[0]), fence[1]]
    if gone:
        payload["d"] = [[key(keys.alert_state()), gone]]
    samples: list[object] = []
    for pair, series in batch.pair_series.items():
        for metric, ts, value in series:
            samples += (key(keys.analytics_series(pair, metric)), ts, repr(value))
    if samples:
        payload["m"] = samples
    if batch.alerts:
        messages = [alert_to_json(a).decode() for a in batch.alerts]
        payload["p"] = [[keys.CHANNEL_ALERTS, m] for m in messages]
        payload["l"] = [key(keys.recent_alerts()), messages, RECENT_ALERTS]
    return keys_, orjson.dumps(payload)


async def load_library(client: AsyncRedis) -> None:
    """The engine's Redis Function, on every primary of a cluster (REPLACE: upgrades)."""
    await on_every_primary(client, "FUNCTION", "LOAD", "REPLACE", library_code("engine"))


class WriteError(RuntimeError):
    """Redis refused some commands of a batch write (the data, not the connection)."""


class FencedError(RuntimeError):
    """The share's lease is held by another process now: nothing of the batch was stored."""


class SnapshotWriter:
    """``cursor_key``: where the cursor goes (default :func:`keys.engine_cursor`; one share's
    :func:`keys.engine_share_cursor` when several engines split the pairs). ``fence``: (lease
    key, owner) of that share: a batch is stored only while the lease is ours (module
    docstring: what that covers on a single node and on a cluster); a fenced batch raises
    :class:`FencedError` and is counted in :attr:`fenced`."""

    def __init__(
        self,
        client: AsyncRedis,
        cluster: bool,
        cursor_key: str | None = None,
        fence: tuple[str, str] | None = None,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.cursor_key = cursor_key or keys.engine_cursor()
        self.fence = fence
        self.refused = 0  # commands Redis answered with an error, since start
        self.fenced = 0  # batches refused because the lease was another process's

    async def prepare(self) -> None:
        """Load the engine's Redis Function (on every primary of a cluster)."""
        await load_library(self.client)

    async def adopt(self, legacy_key: str) -> bool:
        """Move a cursor kept under its former name (``legacy_key``) to :attr:`cursor_key`,
        unless the new one exists already; True if it moved something. Copy, then delete: a
        crash in between leaves the old key, deleted at the next start."""
        if legacy_key == self.cursor_key:
            return False
        old: Any = await self.client.hgetall(legacy_key)
        if not old:
            return False
        moved = False
        if not await self.client.exists(self.cursor_key):
            await self.client.hset(self.cursor_key, mapping=old)
            moved = True
        await self.client.delete(legacy_key)
        return moved

    async def write(self, batch: WriteSet) -> None:
        """Store one batch (module docstring). Connection errors propagate; commands Redis
        refuses are counted and reported as :class:`WriteError` (the rest is stored)."""
        if not self.cluster:
            await self._call(batch)
            return
        if self.fence is not None and _text(await self.client.get(self.fence[0])) != self.fence[1]:
            raise self._fenced(f"the lease {self.fence[0]} is not ours")
        async with self.client.pipeline(transaction=False) as pipe:
            self._results(pipe, batch)
            replies = await pipe.execute(raise_on_error=False)
        if batch.positions:  # the cursor after, fenced in its lease's slot
            replies += await self._cluster_cursor(batch)
        self._check(replies)

    async def _cluster_cursor(self, batch: WriteSet) -> list[Any]:
        if self.fence is None:
            async with self.client.pipeline(transaction=False) as pipe:
                self._cursor(pipe, batch)
                return list(await pipe.execute(raise_on_error=False))
        cursor_only = WriteSet(positions=batch.positions, counts=batch.counts)
        names, argument = function_call(cursor_only, self.cursor_key, self.fence)
        command: tuple[str | int | bytes, ...] = (
            "FCALL",
            FUNCTION_NAME,
            len(names),
            *names,
            argument,
        )
        try:
            reply: Any = await self.client.execute_command(*command)
        except redis.exceptions.ResponseError as exc:
            if "SPREADBUS_FENCED" in str(exc):
                raise self._fenced(str(exc)) from None
            if "Function not found" not in str(exc):
                raise
            await load_library(self.client)  # a primary that lost its functions: as below
            reply = await self.client.execute_command(*command)
        return [] if not int(reply[0]) else [redis.exceptions.ResponseError(_text(reply[1]))]

    def _fenced(self, reason: str) -> FencedError:
        self.fenced += 1
        return FencedError(reason)

    async def _call(self, batch: WriteSet) -> None:
        names, argument = function_call(batch, self.cursor_key, self.fence)
        assert isinstance(self.client, aioredis.Redis)  # a cluster goes through pipelines
        try:
            reply = await fcall(self.client, FUNCTION_NAME, names, [argument])
        except redis.exceptions.ResponseError as exc:
            if "SPREADBUS_FENCED" in str(exc):
                raise self._fenced(str(exc)) from None
            if "Function not found" not in str(exc):
                raise
            # A Redis that lost its functions (restarted without persistence): nothing of the
            # batch was applied, so load the library and apply it now.
            await load_library(self.client)
            reply = await fcall(self.client, FUNCTION_NAME, names, [argument])
        refused, first = int(reply[0]), reply[1]
        if refused:
            self.refused += refused
            text = first.decode() if isinstance(first, bytes) else str(first)
            raise WriteError(f"{refused} command(s) refused, first: {text}")

    def _check(self, replies: Iterable[Any]) -> None:
        errors = [r for r in replies if isinstance(r, Exception)]
        for error in errors:
            if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
                raise error
        if errors:
            self.refused += len(errors)
            raise WriteError(f"{len(errors)} command(s) refused, first: {errors[0]}")

    @staticmethod
    def _results(pipe: Any, batch: WriteSet) -> None:
        for pair, fields in batch.pair_fields.items():
            pipe.hset(keys.analytics_state(pair), mapping=fields)
        for pair, samples in batch.pair_series.items():
            args: list[Any] = []
            for metric, ts, value in samples:
                args += (keys.analytics_series(pair, metric), ts, value)
            pipe.execute_command("TS.MADD", *args)
        for symbol, fields in batch.symbol_fields.items():
            pipe.hset(keys.analytics_state(symbol), mapping=fields)
        for alert in batch.alerts:
            payload = alert_to_json(alert)
            # not pipe.publish: redis-py refuses that name in a cluster pipeline
            pipe.execute_command("PUBLISH", keys.CHANNEL_ALERTS, payload)
            pipe.lpush(keys.recent_alerts(), payload)
        if batch.alerts:
            pipe.ltrim(keys.recent_alerts(), 0, RECENT_ALERTS - 1)
        changed = {k: v for k, v in batch.alert_states.items() if v is not None}
        gone = [k for k, v in batch.alert_states.items() if v is None]
        if changed:
            pipe.hset(keys.alert_state(), mapping=changed)
        if gone:
            pipe.hdel(keys.alert_state(), *gone)

    def _cursor(self, pipe: Any, batch: WriteSet) -> None:
        if batch.positions:
            pipe.hset(self.cursor_key, mapping=cursor_mapping(batch.positions, batch.counts))

    async def save_positions(
        self, positions: Mapping[str, StreamPosition], counts: Mapping[str, tuple[int, int]]
    ) -> None:
        """Where newly followed streams start (before anything was read from them)."""
        if positions:
            await self.client.hset(self.cursor_key, mapping=cursor_mapping(positions, counts))

    async def forget(
        self, pairs: Iterable[str], symbols: Iterable[str], counts: Mapping[str, tuple[int, int]]
    ) -> None:
        """A removed pair's snapshot, a removed symbol's cursor and engine fields. Chart
        series stay (they expire by retention and still describe the past)."""
        pairs, symbols = list(pairs), list(symbols)
        if not (pairs or symbols):
            return
        async with self.client.pipeline(transaction=not self.cluster) as pipe:
            for pair in pairs:
                pipe.delete(keys.analytics_state(pair))
            for symbol in symbols:
                pipe.hdel(keys.analytics_state(symbol), *SYMBOL_FIELDS)
                pipe.hdel(self.cursor_key, keys.tick_stream(symbol), keys.ghost_stream(symbol))
            if symbols:
                pipe.hset(self.cursor_key, COUNTS_FIELD, orjson.dumps(counts))
            await pipe.execute()
