"""Stream entries to the five numbers the engine uses, with exactly the tick schema's rules.

:func:`spreadbus.bus.tickschema.decode` builds a full :class:`~spreadbus.bus.codec.Tick`
(text fields decoded) for every entry; at 50,000 ticks/s that alone would take a large share
of a core. :func:`decode_many` reads the numbers straight from the raw ``bytes`` and checks the
same conditions (numeric, price finite and > 0, qty >= 0, side buy/sell, text is text).
Anything the fast paths do not accept goes through the schema's decoder, so a bad entry is
rejected with its reason and a valid one is never rejected.

Entries come as the flat ``[name, value, ...]`` list of the raw reply the engine's reader asks
for (no dict per entry) or as a field dict. Fast paths: the compact layout the gateway writes
(one field; the trade time of a real tick is its entry id's milliseconds) and the older
nine-field layout in the gateway's order, read by position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from spreadbus.bus import tickschema
from spreadbus.bus.codec import CodecError

_LEGACY: Final = [name.encode() for name in tickschema.LEGACY_FIELDS]  # the old field order
_LEGACY_LEN: Final = 2 * len(tickschema.LEGACY_FIELDS)
# positions of the values in a legacy flat entry
_SYMBOL, _ID, _PRICE, _QTY, _SIDE, _T, _E, _RECV, _SRC = (
    2 * tickschema.LEGACY_FIELDS.index(name) + 1
    for name in ("symbol", "id", "price", "qty", "side", "T", "E", "recv", "src")
)
_FIELD: Final = tickschema.FIELD_B
_SEP: Final = tickschema.SEP.encode()
_REAL_WIDTH, _GHOST_WIDTH = tickschema.REAL_WIDTH, tickschema.GHOST_WIDTH
_PRICE_AT, _QTY_AT, _SIDE_AT = tickschema.PRICE, tickschema.QTY, tickschema.SIDE
_EVENT_AT, _RECV_AT, _SOURCE_AT = tickschema.EVENT, tickschema.RECV, tickschema.SOURCE
_TRADE_MS_AT, _TRADE_ID_AT = tickschema.TRADE_MS, tickschema.TRADE_ID
_SIDES: Final = tickschema.SIDES_B
_INF: Final = math.inf

Fields = dict[bytes, bytes] | dict[str, str] | list[bytes]


class TickPoint(NamedTuple):
    """What the engine needs of a tick: times in epoch ms (``recv`` with sub-ms precision)."""

    trade_ms: int
    price: float
    qty: float
    recv_ms: float
    event_ms: int


@dataclass(slots=True)
class Points:
    """Decoded ticks of one stream read, as columns (no object per tick)."""

    trade_ms: list[int] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    qty: list[float] = field(default_factory=list)
    recv_ms: list[float] = field(default_factory=list)
    event_ms: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trade_ms)

    def add(self, point: TickPoint) -> None:
        self.trade_ms.append(point.trade_ms)
        self.price.append(point.price)
        self.qty.append(point.qty)
        self.recv_ms.append(point.recv_ms)
        self.event_ms.append(point.event_ms)

    def last(self) -> TickPoint:
        return TickPoint(
            self.trade_ms[-1], self.price[-1], self.qty[-1], self.recv_ms[-1], self.event_ms[-1]
        )


def _slow(entry_id: Any, fields: Fields) -> TickPoint:
    """The schema's decoder: names what is wrong with an entry the fast paths did not take."""
    if isinstance(fields, list):
        fields = dict(zip(fields[0::2], fields[1::2], strict=False))
    tick = tickschema.decode(fields, entry_id, "")
    return TickPoint(tick.trade_ts, tick.price_f, tick.qty_f, tick.recv_ts, tick.event_ts)


def decode_many(
    entries: Sequence[tuple[Any, Fields]],
) -> tuple[Points, list[tuple[Any, ValueError]]]:
    """Decode a stream's entries in one loop: the valid ones as columns, and ``(entry id,
    error)`` for the others (a :class:`CodecError`, or a ``UnicodeDecodeError`` for bytes
    that are not text), in order."""
    points = Points()
    bad: list[tuple[Any, ValueError]] = []
    trade_col, price_col, qty_col = points.trade_ms, points.price, points.qty
    recv_col, event_col = points.recv_ms, points.event_ms
    legacy, legacy_len, sides, inf, name, sep = _LEGACY, _LEGACY_LEN, _SIDES, _INF, _FIELD, _SEP
    for entry_id, fields in entries:
        side = None  # set once a fast path has read the entry
        try:
            value = None
            if isinstance(fields, list):
                if len(fields) == 2 and fields[0] == name:
                    value = fields[1]
                elif len(fields) == legacy_len and fields[0::2] == legacy:
                    price = float(fields[_PRICE])
                    qty = float(fields[_QTY])
                    trade_ms = int(fields[_T])
                    event_ms = int(fields[_E])
                    recv_ms = float(fields[_RECV])
                    int(fields[_ID])
                    fields[_SYMBOL].decode()  # text fields must be text, as for the schema
                    fields[_SRC].decode()
                    side = fields[_SIDE]
            elif len(fields) == 1:
                value = fields.get(name)  # type: ignore[call-overload]
            if type(value) is bytes:
                parts = value.split(sep)
                width = len(parts)
                if width == _REAL_WIDTH:
                    trade_ms = int(entry_id[: entry_id.index(b"-")])
                elif width == _GHOST_WIDTH:
                    trade_ms = int(parts[_TRADE_MS_AT])
                    int(parts[_TRADE_ID_AT])
                else:
                    raise ValueError("width")
                price = float(parts[_PRICE_AT])
                qty = float(parts[_QTY_AT])
                event_ms = int(parts[_EVENT_AT])
                recv_ms = float(parts[_RECV_AT])
                parts[_SOURCE_AT].decode()
                side = parts[_SIDE_AT]
            if side is not None and 0.0 < price < inf and qty >= 0.0 and side in sides:
                trade_col.append(trade_ms)
                price_col.append(price)
                qty_col.append(qty)
                recv_col.append(recv_ms)
                event_col.append(event_ms)
                continue
        except (ValueError, TypeError, AttributeError):
            pass  # the schema's decoder below says what is wrong
        try:
            points.add(_slow(entry_id, fields))
        except ValueError as exc:
            bad.append((entry_id, exc))
    return points, bad


__all__ = ["CodecError", "Fields", "Points", "TickPoint", "decode_many"]
