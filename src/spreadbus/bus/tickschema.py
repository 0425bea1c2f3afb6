"""A tick on the bus: field names, the entry layout, encode and decode, in one place.

The layout (written since issue 14)
-----------------------------------
A real tick is ``XADD stream:ticks:{SYMBOL} <trade ms>-<trade id> t "<value>"``: the key already
says the symbol and the entry id the trade time and trade id (an id at or below the stream's
last one is refused, which is what makes a trade idempotent), so the entry carries only the
rest, as one field :data:`FIELD` whose value is the space-separated :data:`REAL_PARTS`::

    t  "98231.40 0.012 buy 1795314919490 1795314919491.123 binance"
        price    qty   side E (event ms)  recv (local ms) source

A ghost tick's entry id is Redis's clock (``*``: ghost ticks are published in due order, not
trade order), so its value adds the two the id does not carry (:data:`GHOST_PARTS`):
``... ghost <trade ms> <trade id>``. One field instead of nine: Redis parses, stores and
replies with two arguments per entry instead of eighteen (``bench gateway`` measures it).
Prices and quantities keep the exchange's exact decimal text; ``recv`` is the shortest text
of the float (``repr``).

The layout before (nine fields)
-------------------------------
``symbol id price qty side T E recv src`` (:data:`LEGACY_FIELDS`), one field each. Entries of
that layout may still sit in a user's Redis (streams keep ~5 minutes) or archive spool: every
decoder here reads both, and :func:`layout` tells them apart.

Consumers: the gateway's writer (:func:`real_args` / :func:`ghost_args`, the argument layout
of ``lua/spreadbus.lua``), the engine's and the archivist's column decoders (which use the
constants here for their fast paths and :func:`decode` for anything unusual), the web's and
the downloads' tick CSVs (:func:`decode`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import add, itemgetter
from typing import Final

from spreadbus.bus import streamid
from spreadbus.bus.codec import CodecError, Tick

FIELD: Final = "t"
FIELD_B: Final = b"t"
SEP: Final = " "
REAL_PARTS: Final = ("price", "qty", "side", "E", "recv", "src")
GHOST_PARTS: Final = (*REAL_PARTS, "T", "id")
REAL_WIDTH: Final = len(REAL_PARTS)
GHOST_WIDTH: Final = len(GHOST_PARTS)
# positions in a split value
PRICE, QTY, SIDE, EVENT, RECV, SOURCE, TRADE_MS, TRADE_ID = range(GHOST_WIDTH)
LEGACY_FIELDS: Final = ("symbol", "id", "price", "qty", "side", "T", "E", "recv", "src")
SIDES: Final = ("buy", "sell")
SIDES_B: Final = (b"buy", b"sell")

Fields = Mapping[bytes, bytes] | Mapping[str, str]

# Tick is a tuple: symbol, trade_id, price, qty, side, trade_ts, event_ts, recv_ts, source
_REAL_GET: Final = itemgetter(2, 3, 4, 6, 7, 8)
_GHOST_GET: Final = itemgetter(2, 3, 4, 6, 7, 8, 5, 1)
_LUA_GET: Final = itemgetter(5, 1, 2, 3)  # what the Lua needs besides the value
_REAL_FMT: Final = "%s %s %s %d %r %s"
_GHOST_FMT: Final = "%s %s %s %d %r %s %d %d"


def real_value(tick: Tick) -> str:
    """The :data:`FIELD` value of a real tick's entry."""
    value: str = _REAL_FMT % _REAL_GET(tick)
    return value


def ghost_value(tick: Tick) -> str:
    """The :data:`FIELD` value of a ghost tick's entry (trade time and id included)."""
    value: str = _GHOST_FMT % _GHOST_GET(tick)
    return value


def to_fields(tick: Tick, *, ghost: bool = False) -> dict[str, str]:
    """The entry of one tick, for code that writes entries itself (tests, tools); the gateway
    writes through the Lua library with :func:`real_args` and :func:`ghost_args`."""
    return {FIELD: ghost_value(tick) if ghost else real_value(tick)}


def legacy_fields(tick: Tick) -> dict[str, str]:
    """The same tick in the nine-field layout of older entries (tests of old data only)."""
    return {
        "symbol": tick.symbol,
        "id": str(tick.trade_id),
        "price": tick.price,
        "qty": tick.qty,
        "side": tick.side,
        "T": str(tick.trade_ts),
        "E": str(tick.event_ts),
        "recv": f"{tick.recv_ts:.3f}",
        "src": tick.source,
    }


def real_args(ticks: Sequence[Tick]) -> list[str | int]:
    """The function arguments of real ticks: per tick trade ms, trade id, price, qty, value
    (``lua/spreadbus.lua``, ``REAL_ARGS``). Built per batch in C loops (``map``,
    ``itemgetter``, ``%``), not per tick in Python."""
    values = map(_REAL_FMT.__mod__, map(_REAL_GET, ticks))
    # zip(values) makes 1-tuples; tuple + tuple concatenates: both in C
    return list(chain.from_iterable(map(add, map(_LUA_GET, ticks), zip(values))))


def ghost_args(ticks: Sequence[Tick]) -> list[str]:
    """The function arguments of ghost ticks: one value each (``GHOST_ARGS``)."""
    return list(map(_GHOST_FMT.__mod__, map(_GHOST_GET, ticks)))


REAL_ARGS: Final = 5  # arguments per real tick in a function call
GHOST_ARGS: Final = 1


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode(fields: Fields, entry: bytes | str, symbol: str) -> Tick:
    """A stream entry of either layout as a :class:`Tick`; :class:`CodecError` naming the
    problem if it is not a valid tick. ``entry`` is the entry id and ``symbol`` the stream's
    symbol (the compact layout leaves both out of the entry)."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    try:
        if FIELD in text and len(text) == 1:
            parts = text[FIELD].split(SEP)
            if len(parts) == REAL_WIDTH:
                trade_ms, trade_id = streamid.parse(entry)
            elif len(parts) == GHOST_WIDTH:
                trade_ms, trade_id = int(parts[TRADE_MS]), int(parts[TRADE_ID])
            else:
                raise CodecError(
                    f"tick value has {len(parts)} parts, expected {REAL_WIDTH} "
                    f"({' '.join(REAL_PARTS)}) or {GHOST_WIDTH}"
                )
            price, qty, side = parts[PRICE], parts[QTY], parts[SIDE]
            event_ms, recv_ms, source = int(parts[EVENT]), float(parts[RECV]), parts[SOURCE]
        else:
            price, qty, side, source = text["price"], text["qty"], text["side"], text["src"]
            symbol, trade_id, trade_ms = text["symbol"], int(text["id"]), int(text["T"])
            event_ms, recv_ms = int(text["E"]), float(text["recv"])
        price_f, qty_f = float(price), float(qty)
    except KeyError as exc:
        raise CodecError(f"tick entry misses field {exc.args[0]!r}") from None
    except ValueError as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"tick entry has a non-numeric field: {exc}") from None
    if side not in SIDES:
        raise CodecError(f"tick entry has side {side!r}, expected buy or sell")
    if not (0.0 < price_f < math.inf and qty_f >= 0.0):
        raise CodecError(f"tick entry has price {price!r} / qty {qty!r} out of range")
    return Tick(
        symbol,
        trade_id,
        price,
        qty,
        "sell" if side == "sell" else "buy",
        trade_ms,
        event_ms,
        recv_ms,
        source,
    )


def decode_all(entries: Iterable[tuple[bytes | str, Fields]], symbol: str) -> list[Tick]:
    """Every entry of an ``XRANGE`` reply of ``symbol``'s stream, decoded (:func:`decode`)."""
    return [decode(fields, entry, symbol) for entry, fields in entries]


__all__ = [
    "FIELD",
    "GHOST_PARTS",
    "LEGACY_FIELDS",
    "REAL_PARTS",
    "CodecError",
    "decode",
    "decode_all",
    "ghost_args",
    "legacy_fields",
    "real_args",
    "to_fields",
]
