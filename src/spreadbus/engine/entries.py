"""Stream entries to the five numbers the engine uses, with exactly the codec's rules.

:func:`spreadbus.bus.codec.tick_from_fields` builds a full :class:`~spreadbus.bus.codec.Tick`
(text fields decoded, a frozen dataclass) for every entry; at 50,000 ticks/s that alone would
take a large share of a core. This module reads the numbers straight from the raw ``bytes``
and checks the same conditions (every field present, numeric, price finite and > 0, qty >= 0,
side buy/sell). Anything the fast path does not accept goes through the codec, so a bad entry
is rejected with the codec's own reason and a valid one is never rejected.

Entries come either as a field dict (redis-py's usual reply) or as the flat
``[name, value, name, value, ...]`` list of the raw reply the engine's reader asks for (no
dict per entry). A flat entry in the order the gateway writes (:data:`TICK_FIELDS`) is read by
position; any other order is turned into a dict first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from spreadbus.bus.codec import TICK_FIELDS, CodecError, tick_from_fields

_REQUIRED: Final = frozenset(name.encode() for name in TICK_FIELDS)
_CANONICAL: Final = [name.encode() for name in TICK_FIELDS]  # the gateway's field order
_FLAT_LEN: Final = 2 * len(TICK_FIELDS)
# positions of the values in a canonical flat entry
_SYMBOL, _ID, _PRICE, _QTY, _SIDE, _T, _E, _RECV, _SRC = (
    2 * TICK_FIELDS.index(name) + 1
    for name in ("symbol", "id", "price", "qty", "side", "T", "E", "recv", "src")
)
_SIDES: Final = (b"buy", b"sell")
_INF: Final = math.inf

Fields = dict[bytes, bytes] | dict[str, str] | list[bytes]


class TickPoint(NamedTuple):
    """What the engine needs of a tick: times in epoch ms (``recv`` with sub-ms precision)."""

    trade_ms: int
    price: float
    qty: float
    recv_ms: float
    event_ms: int


def decode(fields: Fields) -> TickPoint:
    """One entry's :class:`TickPoint`; :class:`CodecError` (a ``ValueError``) if the entry is
    not a valid tick."""
    if isinstance(fields, list):
        points, bad = decode_many([(b"", fields)])
        if bad:
            raise bad[0][1]
        return points.last()
    try:
        if fields.keys() >= _REQUIRED:
            raw: dict[bytes, bytes] = fields  # type: ignore[assignment]
            price = float(raw[b"price"])
            qty = float(raw[b"qty"])
            trade_ms = int(raw[b"T"])
            event_ms = int(raw[b"E"])
            recv_ms = float(raw[b"recv"])
            int(raw[b"id"])
            raw[b"symbol"].decode()  # text fields must be text, as for the codec
            raw[b"src"].decode()
            if 0.0 < price < _INF and qty >= 0.0 and raw[b"side"] in _SIDES:
                return TickPoint(trade_ms, price, qty, recv_ms, event_ms)
    except (TypeError, ValueError, AttributeError):
        pass
    tick = tick_from_fields(fields)  # the slow path names what is wrong
    return TickPoint(tick.trade_ts, tick.price_f, tick.qty_f, tick.recv_ts, tick.event_ts)


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
    canonical, flat_len, sides, inf = _CANONICAL, _FLAT_LEN, _SIDES, _INF
    for entry_id, fields in entries:
        if type(fields) is list:
            if len(fields) == flat_len and fields[0::2] == canonical:
                try:
                    price = float(fields[_PRICE])
                    qty = float(fields[_QTY])
                    trade_ms = int(fields[_T])
                    event_ms = int(fields[_E])
                    recv_ms = float(fields[_RECV])
                    int(fields[_ID])
                    fields[_SYMBOL].decode()  # text fields must be text, as for the codec
                    fields[_SRC].decode()
                    if 0.0 < price < inf and qty >= 0.0 and fields[_SIDE] in sides:
                        trade_col.append(trade_ms)
                        price_col.append(price)
                        qty_col.append(qty)
                        recv_col.append(recv_ms)
                        event_col.append(event_ms)
                        continue
                except ValueError:
                    pass  # the codec below says what is wrong
            as_dict: Fields = dict(zip(fields[0::2], fields[1::2], strict=False))
        else:
            as_dict = fields
        try:
            points.add(decode(as_dict))
        except ValueError as exc:
            bad.append((entry_id, exc))
    return points, bad


__all__ = ["CodecError", "Fields", "Points", "TickPoint", "decode", "decode_many"]
