"""Writing ticks to Redis: streams, the raw price TimeSeries and exact 1-minute candles.

:class:`TickWriter` prepares each symbol once (series, compaction rules, before its first tick)
and then publishes a whole flush with one ``FCALL spreadbus_publish_ticks`` (one per symbol on
Redis Cluster); the Lua function (``lua/spreadbus.lua``) explains how it stays idempotent on the
trade id, exact, and all or nothing.

A Redis that lost its functions (a restart without them, ``FUNCTION FLUSH``, ``FLUSHALL``) or
some of a symbol's series (deleted, ``FLUSHALL``) is repaired inside :meth:`TickWriter.write`
and the same batch written again; what cannot be repaired (out of memory, connection lost)
raises :class:`WriteError`, which says which symbols were written and which were not.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

import redis.asyncio as aioredis
import redis.exceptions

from spreadbus.bus import keys, streamid, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.bus.connect import AsyncRedis, PackedArgs, fcall, is_cluster, on_every_primary
from spreadbus.bus.functions import library_code

PRICE_RETENTION_MS: Final = 3_600_000  # raw prices: 1 hour
CANDLE_RETENTION_MS: Final = 86_400_000  # candles: 24 hours
CANDLE_BUCKET_MS: Final = 60_000
FUNCTION_NAME: Final = "spreadbus_publish_ticks"
REFILL_FUNCTION: Final = "spreadbus_refill_sources"
WRITE_ATTEMPTS: Final = 3  # a write repairs and retries at most this often before it gives up

# candle field -> (duplicate policy of its per-millisecond source, compaction aggregation)
CANDLE_RULES: Final[dict[keys.CandleField, tuple[str, str]]] = {
    "open": ("FIRST", "first"),
    "high": ("MAX", "max"),
    "low": ("MIN", "min"),
    "close": ("LAST", "last"),
    "volume": ("SUM", "sum"),
}


# KEYS 3..7 (sources) and 8..12 (candles) of a symbol in the function call: close first
_SOURCE_ORDER: Final[tuple[keys.CandleField, ...]] = ("close", "open", "high", "low", "volume")


@dataclass(slots=True)
class WriteResult:
    added: int = 0
    duplicates: int = 0
    ghosts: int = 0
    refused_samples: int = 0  # series samples Redis refused after the stream took the tick
    repairs: int = 0  # symbols whose series were recreated during the write
    function_reloads: int = 0

    def add_reply(self, reply: Sequence[int]) -> None:
        self.added += reply[0]
        self.duplicates += reply[1]
        self.ghosts += reply[2]
        self.refused_samples += reply[3]


class WriteError(Exception):
    """A write that did not go through for ``failed`` symbols (the others are in ``result``:
    written, exactly once). ``kind`` names the cause for counters: ``connection``,
    ``out_of_memory``, ``read_only``, ``missing_function``, ``missing_series``, ``wrong_type``,
    ``busy`` or ``error``."""

    def __init__(self, cause: BaseException, failed: set[str], result: WriteResult) -> None:
        super().__init__(f"{error_kind(cause)}: {cause}"[:300])
        self.cause = cause
        self.kind = error_kind(cause)
        self.failed = failed
        self.result = result


def error_kind(exc: BaseException) -> str:
    """A short, stable name for why a write failed."""
    text = str(exc)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError):
        return "connection"
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
        return "out_of_memory"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "read_only"
    if isinstance(exc, redis.exceptions.BusyLoadingError) or text.startswith("BUSY"):
        return "busy"
    if "Function not found" in text or "No matching library" in text:
        return "missing_function"
    if text.startswith("SPREADBUS_MISSING_SERIES"):
        return "missing_series"
    if text.startswith("SPREADBUS_WRONG_TYPE"):
        return "wrong_type"
    return "error"


@dataclass(slots=True)
class SymbolBatch:
    """What one flush writes for one symbol."""

    ticks: list[Tick]
    ghosts: list[Tick]
    cut_ms: int | None = None  # trim real entries below this trade time
    ghost_cut_ms: int | None = None  # trim ghost entries below this wall-clock time


def _call_arguments(
    group: Sequence[tuple[str, SymbolBatch]],
) -> tuple[list[str], list[str | bytes | int | float]]:
    """The keys and arguments of one :data:`FUNCTION_NAME` call for these symbols."""
    names: list[str] = []
    for symbol, _ in group:
        names.extend(_symbol_keys(symbol))
    return names, _call_values(group)


def _call_values(group: Sequence[tuple[str, SymbolBatch]]) -> list[str | bytes | int | float]:
    """The arguments (ARGV) of one :data:`FUNCTION_NAME` call for these symbols: four per
    symbol, then every real tick, then every ghost, each block formatted in one pass
    (:mod:`spreadbus.bus.tickschema`; hiredis turns the numbers into text)."""
    values: list[str | bytes | int | float] = [tickschema.FIELD]
    real: list[Tick] = []
    ghosts: list[Tick] = []
    for _, batch in group:
        values += (
            len(batch.ticks), len(batch.ghosts),
            "" if batch.cut_ms is None else batch.cut_ms,
            "" if batch.ghost_cut_ms is None else batch.ghost_cut_ms,
        )  # fmt: skip
        real += batch.ticks
        ghosts += batch.ghosts
    values += tickschema.real_args(real)
    values += tickschema.ghost_args(ghosts)
    return values


@functools.lru_cache(maxsize=4096)
def _packed_keys(symbol: str) -> PackedArgs:
    """A symbol's twelve keys, packed once for every flush that names them."""
    return PackedArgs.of(_symbol_keys(symbol))


@functools.lru_cache(maxsize=4096)
def _symbol_keys(symbol: str) -> tuple[str, ...]:
    """The twelve keys of a symbol in a function call (see ``lua/spreadbus.lua``); built once
    per symbol (every flush names them, and twelve f-strings a symbol were a fifth of a small
    flush's client time)."""
    names = [keys.tick_stream(symbol), keys.ghost_stream(symbol)]
    names.extend(keys.candle_source_series(symbol, field) for field in _SOURCE_ORDER)
    names.extend(keys.candle_series(symbol, field) for field in _SOURCE_ORDER)
    return tuple(names)


def function_code() -> str:
    return library_code("spreadbus")


async def load_function(client: AsyncRedis) -> None:
    """(Re)load the Lua library on every primary; REPLACE makes upgrades seamless."""
    await on_every_primary(client, "FUNCTION", "LOAD", "REPLACE", function_code())


async def ensure_symbol_series(client: AsyncRedis, symbol: str) -> None:
    """Create the price series, candle sources, candles and rules of a symbol if missing.

    Must run before the symbol's first tick: a compaction rule only sees samples added after it
    exists, and TS.MADD into a missing key fails.
    """
    price = keys.price_series(symbol)
    await _create(client, price, PRICE_RETENTION_MS, "LAST", symbol, "price")
    for field, (policy, aggregation) in CANDLE_RULES.items():
        source = keys.candle_source_series(symbol, field)
        if source != price:
            await _create(client, source, PRICE_RETENTION_MS, policy, symbol, f"tick_{field}")
        candle = keys.candle_series(symbol, field)
        await _create(client, candle, CANDLE_RETENTION_MS, "LAST", symbol, f"candle_{field}")
        info = await client.execute_command("TS.INFO", source)
        if candle.encode() not in _rule_targets(info):
            await client.execute_command(
                "TS.CREATERULE", source, candle, "AGGREGATION", aggregation, CANDLE_BUCKET_MS
            )


async def repair_symbol(client: AsyncRedis, symbol: str) -> list[keys.CandleField]:
    """Make a symbol's series whole again; returns the candle fields that needed it.

    A source series that was deleted (or whose candle series was, taking the compaction rule
    with it) is recreated with its rule, and the minute still being built, which lived only in
    the lost rule, is rebuilt from the tick stream: the source's samples of that minute are
    dropped and made again from the stream's entries (``spreadbus_refill_sources``), so the
    rule sees the whole minute and the candle comes out exact. Candles of earlier minutes that
    went with a deleted candle series are gone (the stream keeps only minutes).
    """
    broken: list[keys.CandleField] = []
    for field in CANDLE_RULES:
        source = keys.candle_source_series(symbol, field)
        try:
            info = await client.execute_command("TS.INFO", source)
        except redis.exceptions.ResponseError:
            broken.append(field)  # missing (or not a series: TS.CREATE will say so)
            continue
        if keys.candle_series(symbol, field).encode() not in _rule_targets(info):
            broken.append(field)
    if not broken:
        return broken
    from_ms = await _building_minute(client, symbol)
    if from_ms is not None:
        for field in broken:
            with contextlib.suppress(redis.exceptions.ResponseError):  # missing: nothing to drop
                await client.execute_command(
                    "TS.DEL", keys.candle_source_series(symbol, field), from_ms, "+"
                )
    await ensure_symbol_series(client, symbol)
    if from_ms is not None:
        flags = "".join("1" if f in broken else "0" for f in _SOURCE_ORDER)
        names = _symbol_keys(symbol)
        await client.execute_command(
            "FCALL", REFILL_FUNCTION, len(names), *names, tickschema.FIELD, from_ms, flags
        )
    return broken


async def _building_minute(client: AsyncRedis, symbol: str) -> int | None:
    """Start (epoch ms) of the minute of the stream's last tick: the candle still open."""
    last = await client.xrevrange(keys.tick_stream(symbol), count=1)
    if not last:
        return None
    trade_ms = streamid.ms_of(cast(bytes, last[0][0]))
    return trade_ms - trade_ms % CANDLE_BUCKET_MS


def _rule_targets(info: object) -> set[bytes]:
    """Destination keys of a series' compaction rules, from TS.INFO in any reply shape
    (redis-py parses it into a dict keyed by destination; raw RESP2 is a list of lists)."""
    rules = _info_field(info, b"rules")
    if isinstance(rules, dict):
        names = list(rules)
    elif isinstance(rules, list | tuple):
        names = [rule[0] for rule in rules]
    else:
        names = []
    return {n if isinstance(n, bytes) else str(n).encode() for n in names}


def _info_field(info: object, name: bytes) -> object:
    if isinstance(info, dict):
        return info.get(name) or info.get(name.decode())
    items = list(info) if isinstance(info, list | tuple) else []
    for i in range(0, len(items) - 1, 2):
        if items[i] in (name, name.decode()):
            return items[i + 1]
    return None


async def _create(
    client: AsyncRedis, key: str, retention_ms: int, policy: str, symbol: str, kind: str
) -> None:
    try:
        await client.execute_command(
            "TS.CREATE", key, "RETENTION", retention_ms, "DUPLICATE_POLICY", policy,
            "LABELS", "symbol", symbol, "kind", kind,
        )  # fmt: skip
    except redis.exceptions.ResponseError as exc:
        if "already exists" not in str(exc):
            raise


async def last_trades(client: AsyncRedis, symbols: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(trade time, trade id) of the last tick each symbol's stream ever accepted, from the
    stream's last generated id (kept even when every entry has been trimmed)."""
    async with client.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.execute_command("XINFO", "STREAM", keys.tick_stream(symbol))
        replies = await pipe.execute(raise_on_error=False)
    out: dict[str, tuple[int, int]] = {}
    for symbol, reply in zip(symbols, replies, strict=True):
        if isinstance(reply, Exception):
            continue  # no stream yet
        last = _info_field(reply, b"last-generated-id")
        if isinstance(last, bytes | str):
            trade_ms, trade_id = streamid.parse(last)
            if trade_ms > 0:
                out[symbol] = (trade_ms, trade_id)
    return out


class TickWriter:
    """Publishes a flush of real and ghost ticks: one FCALL on a single node, one per symbol
    (pipelined) on Redis Cluster."""

    def __init__(self, client: AsyncRedis) -> None:
        self.client = client
        self.prepared: set[str] = set()

    async def prepare(self, symbols: Sequence[str]) -> None:
        await load_function(self.client)
        for symbol in symbols:
            await repair_symbol(self.client, symbol)
            self.prepared.add(symbol)

    async def write(self, batches: Mapping[str, SymbolBatch]) -> WriteResult:
        """Write every symbol's batch, all or nothing per call.

        A lost function library is reloaded and missing series are repaired, then the same
        batch is written again (at most :data:`WRITE_ATTEMPTS` calls). Anything else, or a
        repair that did not cure it, raises :class:`WriteError`: the caller keeps the failed
        symbols' batches and retries later; a retry is safe (the function is idempotent on the
        trade id, and a refused call wrote nothing)."""
        result = WriteResult()
        pending = dict(batches)
        for attempt in range(WRITE_ATTEMPTS):
            try:
                for symbol in pending:
                    if symbol not in self.prepared:
                        result.repairs += bool(await repair_symbol(self.client, symbol))
                        self.prepared.add(symbol)
                failures = await self._call(pending, result)
            except (redis.exceptions.RedisError, OSError) as exc:
                raise WriteError(exc, set(pending), result) from exc
            if not failures:
                return result
            cause = next(iter(failures.values()))
            pending = {symbol: pending[symbol] for symbol in failures}
            kinds = {error_kind(exc) for exc in failures.values()}
            if attempt + 1 == WRITE_ATTEMPTS or not kinds <= {"missing_function", "missing_series"}:
                break
            try:
                if "missing_function" in kinds:
                    await load_function(self.client)  # a Redis that lost its functions
                    result.function_reloads += 1
            except (redis.exceptions.RedisError, OSError) as exc:
                raise WriteError(exc, set(pending), result) from exc
            for symbol, failure in failures.items():
                if error_kind(failure) == "missing_series":
                    self.prepared.discard(symbol)  # repaired before the next attempt
        raise WriteError(cause, set(pending), result)

    async def _call(
        self, batches: Mapping[str, SymbolBatch], result: WriteResult
    ) -> dict[str, redis.exceptions.ResponseError]:
        """One attempt: the replies go into ``result``; returns each failed symbol's error."""
        failures: dict[str, redis.exceptions.ResponseError] = {}
        if is_cluster(self.client):
            # every symbol's keys live in a slot of their own: one call per symbol, pipelined
            async with self.client.pipeline(transaction=False) as pipe:
                for item in batches.items():
                    names, values = _call_arguments([item])
                    pipe.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *values)
                replies = await pipe.execute(raise_on_error=False)
            for symbol, reply in zip(batches, replies, strict=True):
                if isinstance(reply, redis.exceptions.ResponseError):
                    failures[symbol] = reply
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    result.add_reply(reply)
            return failures
        assert isinstance(self.client, aioredis.Redis)
        keys = PackedArgs.join([_packed_keys(symbol) for symbol in batches])
        try:
            reply = await fcall(
                self.client, FUNCTION_NAME, keys, _call_values(list(batches.items()))
            )
        except redis.exceptions.ResponseError as exc:
            return dict.fromkeys(batches, exc)  # the call wrote nothing at all
        result.add_reply(reply)
        return failures
