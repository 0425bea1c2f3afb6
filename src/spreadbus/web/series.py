"""Reading RedisTimeSeries windows: the last N minutes of several series, aligned by time.

The window ends at the newest sample of the series asked for, not at the wall clock, so a
replay of last year's trades charts the same as a live feed. All series of one request share
a hash tag (one symbol, one pair), so each pipeline goes to a single node, cluster or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis.exceptions

Sample = tuple[int, bytes]
MINUTE_MS: Final = 60_000


def _missing(reply: object) -> bool:
    return isinstance(reply, redis.exceptions.ResponseError) and "does not exist" in str(reply)


def _check(reply: object) -> None:
    if isinstance(reply, Exception) and not _missing(reply):
        raise reply


async def read_window(
    client: Any, names: Sequence[str], minutes: int, *, latest: bool = False
) -> dict[str, list[Sample] | None]:
    """``name -> samples`` of the last ``minutes`` up to the newest sample among ``names``;
    ``None`` for a series that does not exist. ``latest`` includes a compaction's open bucket
    (the current, still growing candle)."""
    extra = ("LATEST",) if latest else ()
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.execute_command("TS.GET", name, *extra)
        heads: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in heads:
        _check(reply)
    present = [n for n, h in zip(names, heads, strict=True) if not _missing(h)]
    stamps = [int(h[0]) for h in heads if not _missing(h) and h]
    out: dict[str, list[Sample] | None] = dict.fromkeys(names)
    for name in present:
        out[name] = []
    if not stamps:
        return out
    start = max(stamps) - minutes * MINUTE_MS + 1
    async with client.pipeline(transaction=False) as pipe:
        for name in present:
            pipe.execute_command("TS.RANGE", name, start, "+", *extra)
        ranges: list[Any] = await pipe.execute(raise_on_error=False)
    for name, reply in zip(present, ranges, strict=True):
        _check(reply)
        out[name] = [] if _missing(reply) else [(int(ts), value) for ts, value in reply]
    return out


def align(columns: Mapping[str, Sequence[Sample] | None]) -> list[tuple[int, list[bytes | None]]]:
    """Rows ``(time, [value of each column or None])`` over the union of the times, sorted."""
    names = list(columns)
    table: dict[int, list[bytes | None]] = {}
    for index, name in enumerate(names):
        for ts, value in columns[name] or ():
            row = table.setdefault(ts, [None] * len(names))
            row[index] = value
    return sorted(table.items())
