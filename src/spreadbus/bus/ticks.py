"""Writing ticks to Redis: streams, the raw price TimeSeries and exact 1-minute candles.

:class:`TickWriter` prepares each symbol once (series, compaction rules, before its first tick)
and then publishes a whole flush with one ``FCALL spreadbus_publish_ticks`` per symbol; the Lua
function (``lua/spreadbus.lua``) explains how it stays idempotent on the trade id and exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import chain
from typing import Final

import redis.asyncio as aioredis
import redis.exceptions

from spreadbus.bus import keys
from spreadbus.bus.codec import TICK_FIELDS, Tick
from spreadbus.bus.connect import AsyncRedis, fcall, is_cluster

PRICE_RETENTION_MS: Final = 3_600_000  # raw prices: 1 hour
CANDLE_RETENTION_MS: Final = 86_400_000  # candles: 24 hours
CANDLE_BUCKET_MS: Final = 60_000
FUNCTION_NAME: Final = "spreadbus_publish_ticks"

# candle field -> (duplicate policy of its per-millisecond source, compaction aggregation)
CANDLE_RULES: Final[dict[keys.CandleField, tuple[str, str]]] = {
    "open": ("FIRST", "first"),
    "high": ("MAX", "max"),
    "low": ("MIN", "min"),
    "close": ("LAST", "last"),
    "volume": ("SUM", "sum"),
}


_FIELD_NAMES: Final = "\t".join(TICK_FIELDS).encode()
# KEYS 3..7 of a symbol in the function call: the price series (close) first
_SOURCE_ORDER: Final[tuple[keys.CandleField, ...]] = ("close", "open", "high", "low", "volume")


def tick_row(tick: Tick) -> list[str]:
    """A tick's field values as Redis stores them, in :data:`TICK_FIELDS` order: ``str`` of
    each value, which is how hiredis packs numbers (floats by their shortest repr)."""
    return [str(value) for value in tick]


@dataclass(slots=True)
class WriteResult:
    added: int = 0
    duplicates: int = 0
    ghosts: int = 0


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
    """The keys and arguments of one :data:`FUNCTION_NAME` call for these symbols.

    A tick is a tuple in :data:`TICK_FIELDS` order, so its values go in as they are
    (``chain.from_iterable`` flattens in C) and hiredis turns the numbers into text."""
    names: list[str] = []
    values: list[str | bytes | int | float] = [_FIELD_NAMES]
    for symbol, batch in group:
        names.append(keys.tick_stream(symbol))
        names.append(keys.ghost_stream(symbol))
        names.extend(keys.candle_source_series(symbol, field) for field in _SOURCE_ORDER)
        values.append(len(batch.ticks))
        values.append(len(batch.ghosts))
        values.append("" if batch.cut_ms is None else batch.cut_ms)
        values.append("" if batch.ghost_cut_ms is None else batch.ghost_cut_ms)
        values.extend(chain.from_iterable(batch.ticks))
        values.extend(chain.from_iterable(batch.ghosts))
    return names, values


def function_code() -> str:
    return resources.files("spreadbus.bus").joinpath("lua/spreadbus.lua").read_text()


async def load_function(client: AsyncRedis) -> None:
    """(Re)load the Lua library on every primary; REPLACE makes upgrades seamless."""
    code = function_code()
    if is_cluster(client):
        await client.execute_command("FUNCTION", "LOAD", "REPLACE", code, target_nodes="primaries")
    else:
        await client.execute_command("FUNCTION", "LOAD", "REPLACE", code)


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
            text = last.decode() if isinstance(last, bytes) else last
            trade_ms, trade_id = text.split("-")
            if int(trade_ms) > 0:
                out[symbol] = (int(trade_ms), int(trade_id))
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
            await ensure_symbol_series(self.client, symbol)
            self.prepared.add(symbol)

    async def write(self, batches: Mapping[str, SymbolBatch]) -> WriteResult:
        """Write every symbol's batch; raises on connection errors (the caller keeps the data
        and retries: the function is idempotent, so a retry after a partial write is safe)."""
        for symbol in batches:
            if symbol not in self.prepared:
                await ensure_symbol_series(self.client, symbol)
                self.prepared.add(symbol)
        if is_cluster(self.client):
            # every symbol's keys live in a slot of their own: one call per symbol, pipelined
            async with self.client.pipeline(transaction=False) as pipe:
                for item in batches.items():
                    names, values = _call_arguments([item])
                    pipe.execute_command("FCALL", FUNCTION_NAME, len(names), *names, *values)
                replies = await pipe.execute(raise_on_error=False)
        else:
            assert isinstance(self.client, aioredis.Redis)
            names, values = _call_arguments(list(batches.items()))
            try:
                replies = [await fcall(self.client, FUNCTION_NAME, names, values)]
            except redis.exceptions.ResponseError as exc:
                replies = [exc]
        result = WriteResult()
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                if "Function not found" in str(reply) or "No matching library" in str(reply):
                    await load_function(self.client)  # a Redis that lost its functions
                raise reply
            added, duplicates, ghosts = reply
            result.added += added
            result.duplicates += duplicates
            result.ghosts += ghosts
        return result
