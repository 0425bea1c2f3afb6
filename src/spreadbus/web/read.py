"""The web's read layer: every Redis query the API and the dashboard make, written once.

Route handlers turn these answers into HTTP (a ``None`` becomes a 404); the dashboard's
callbacks turn them into figures and text. Neither writes its own Redis query, so the page
shows exactly what the API serves. Functions take the client first and never raise for data
that is merely absent: a pair the engine has not written yet is an empty mapping.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

import redis.exceptions

from spreadbus.archivist.layout import archive_root
from spreadbus.archivist.reader import list_files
from spreadbus.bus import keys
from spreadbus.bus.codec import Alert, CodecError, alert_from_json
from spreadbus.bus.configstore import load_pairs
from spreadbus.logger.record import Record
from spreadbus.logger.sink import LOG_FILE_NAME, log_dir
from spreadbus.logger.view import LogFilter, parse_line
from spreadbus.web.fields import Scalar, number, typed_fields
from spreadbus.web.series import MINUTE_MS, Sample, align, read_window

Step = Literal["1s", "1m"]
CandleInterval = Literal["1m", "5m", "15m", "1h"]
INTERVAL_MS: Final[dict[str, int]] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
# how each candle field of a longer interval is made from the 1-minute candles
_CANDLE_AGGREGATION: Final = {
    "open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
}  # fmt: skip
RAW_WINDOW_MINUTES: Final = 60  # the 1 s series keep an hour; longer windows use the 1 m ones

Candle = tuple[int, float | None, float | None, float | None, float | None, float | None]


async def configured_pairs(client: Any, defaults: Sequence[str]) -> tuple[list[str], bool]:
    """``(pairs, from_defaults)``: the configured pairs ``Y/X`` sorted, or ``defaults`` (and
    True) while nothing is configured. Never writes."""
    pairs = await load_pairs(client, ())
    if not pairs:
        return sorted(defaults), True
    return pairs, False


async def snapshots(client: Any, names: Sequence[str]) -> dict[str, dict[str, Scalar]]:
    """``name -> fields`` of ``state:analytics:{name}`` for pairs or symbols (empty if none),
    typed: numbers as numbers, NaN as None."""
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.analytics_state(name))
        replies: list[Any] = await pipe.execute()
    return {name: typed_fields(raw) for name, raw in zip(names, replies, strict=True)}


async def feeds(client: Any, symbols: Sequence[str]) -> dict[str, dict[str, Scalar]]:
    """``symbol -> fields`` of the gateway's ``state:feed:{SYMBOL}`` (empty if none)."""
    async with client.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.hgetall(keys.feed_state(symbol))
        replies: list[Any] = await pipe.execute()
    return {s: typed_fields(raw) for s, raw in zip(symbols, replies, strict=True)}


def step_for(minutes: int) -> Step:
    """The finest series that reaches ``minutes`` back."""
    return "1s" if minutes <= RAW_WINDOW_MINUTES else "1m"


def series_key(pair: str, metric: str, step: Step) -> str:
    if step == "1s":
        return keys.analytics_series(pair, metric)
    return keys.analytics_series_1m(pair, metric)


async def history(
    client: Any, pair: str, metrics: Sequence[str], minutes: int, step: Step
) -> dict[str, list[Sample] | None]:
    """``metric -> samples`` of the pair's chart series over the last ``minutes`` before the
    newest sample (None where the series does not exist)."""
    names = {metric: series_key(pair, metric, step) for metric in metrics}
    window = await read_window(client, list(names.values()), minutes, latest=step == "1m")
    return {metric: window[key] for metric, key in names.items()}


async def history_since(
    client: Any, pair: str, metrics: Sequence[str], after_ms: int, step: Step
) -> dict[str, list[tuple[int, float | None]]]:
    """``metric -> points`` newer than ``after_ms``: what a live chart appends each second."""
    extra = ("LATEST",) if step == "1m" else ()
    async with client.pipeline(transaction=False) as pipe:
        for metric in metrics:
            key = series_key(pair, metric, step)
            pipe.execute_command("TS.RANGE", key, after_ms + 1, "+", *extra)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    out: dict[str, list[tuple[int, float | None]]] = {}
    for metric, reply in zip(metrics, replies, strict=True):
        failed = isinstance(reply, Exception)  # a series not made yet
        out[metric] = [] if failed else [(int(t), number(v)) for t, v in reply]
    return out


async def price_bars(
    client: Any, symbol: str, minutes: int, bucket_ms: int
) -> list[tuple[int, float]]:
    """Last trade price per ``bucket_ms`` bar (bars start at epoch multiples) over the last
    ``minutes`` before the newest trade: bars under a minute from the raw price series (1 h),
    longer ones from the 1-minute closes (24 h). Redis aggregates: the raw samples never
    leave it."""
    raw = bucket_ms < MINUTE_MS
    source = keys.price_series(symbol) if raw else keys.candle_series(symbol, "close")
    latest = () if raw else ("LATEST",)
    try:
        head: Any = await client.execute_command("TS.GET", source, *latest)
    except redis.exceptions.ResponseError as exc:
        if "does not exist" in str(exc):
            return []
        raise
    if not head:
        return []
    start = int(head[0]) - minutes * MINUTE_MS + 1
    start -= start % bucket_ms
    reply: list[Any] = await client.execute_command(
        "TS.RANGE", source, start, "+", *latest, "AGGREGATION", "last", bucket_ms
    )
    return [(int(t), float(v)) for t, v in reply]


async def candles(
    client: Any, symbol: str, minutes: int, interval: CandleInterval = "1m"
) -> list[Candle] | None:
    """OHLCV candles of the last ``minutes`` up to the newest (still growing) one; intervals
    longer than a minute are aggregated from the exact 1-minute candles (first, max, min, last,
    sum), aligned to epoch multiples of the interval. None when the symbol has no candles."""
    series = {field: keys.candle_series(symbol, field) for field in keys.CANDLE_FIELDS}
    window = await read_window(client, list(series.values()), minutes, latest=True)
    if all(v is None for v in window.values()):
        return None
    if interval == "1m":
        columns: dict[str, Any] = {field: window[key] for field, key in series.items()}
    else:
        bucket = INTERVAL_MS[interval]
        starts = [s[0][0] for s in window.values() if s]
        if not starts:
            return []
        start = min(starts) - min(starts) % bucket
        async with client.pipeline(transaction=False) as pipe:
            for field, key in series.items():
                pipe.execute_command(
                    "TS.RANGE", key, start, "+", "LATEST",
                    "AGGREGATION", _CANDLE_AGGREGATION[field], bucket,
                )  # fmt: skip
            replies: list[Any] = await pipe.execute()
        columns = {
            field: [(int(t), v) for t, v in reply]
            for field, reply in zip(series, replies, strict=True)
        }
    rows = align(columns)
    return [
        (ts, *(None if v is None else number(v) for v in values))  # type: ignore[misc]
        for ts, values in rows
    ]


async def recent_alerts(client: Any, limit: int) -> list[Alert]:
    """The latest alert events, newest first (entries that do not decode are skipped)."""
    raw: list[bytes] = await client.lrange(keys.recent_alerts(), 0, limit - 1)
    events: list[Alert] = []
    for item in raw:
        try:
            events.append(alert_from_json(item))
        except CodecError:
            continue
    return events


async def memory_and_keys(client: Any) -> dict[str, Scalar]:
    """Redis's used memory (bytes, and as text) and key count, for the system view."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.info("memory")
        pipe.dbsize()
        memory, count = await pipe.execute()
    return {
        "used_memory_bytes": int(memory.get("used_memory", 0)),
        "used_memory_human": str(memory.get("used_memory_human", "")),
        "maxmemory_bytes": int(memory.get("maxmemory", 0)),
        "keys": int(count),
    }


def archive_summary(data_dir: Path) -> dict[str, int]:
    """Files, bytes and newest modification (epoch ms) of the Parquet archive (blocking: the
    caller runs it in a thread)."""
    files = list_files(archive_root(data_dir))
    return {
        "files": len(files),
        "bytes": sum(f.size for f in files),
        "last_write_ms": max((f.mtime_ms for f in files), default=0),
    }


LOG_TAIL_BYTES: Final = 512 * 1024


def recent_log_events(data_dir: Path, limit: int, min_level: str = "WARNING") -> list[Record]:
    """The newest ``limit`` log events at ``min_level`` or above from the logger's live file,
    newest first (blocking: the caller runs it in a thread). Reads only the file's tail."""
    path = log_dir(data_dir) / LOG_FILE_NAME
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(size - LOG_TAIL_BYTES, 0)
            handle.seek(start)
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    if start:
        lines = lines[1:]  # the first line read from mid-file is a fragment
    wanted = LogFilter(min_level=min_level)
    events = (parse_line(line) for line in reversed(lines) if line.strip())
    return [record for record in events if wanted.matches(record)][:limit]
