"""Binance USDT-M futures market-stream protocol: pure parsers and message builders.

No I/O here: bytes in, :class:`Tick` / :class:`ControlReply` / :class:`Skipped` out, or a
:class:`FrameError` whose ``reason`` is a short counter name. Facts: ``shared/BINANCE.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlencode

import orjson

from spreadbus.bus.codec import Tick

StreamKind = Literal["aggTrade", "trade"]
MAX_STREAMS_PER_CONNECTION: Final = 1024


class FrameError(ValueError):
    """A frame we cannot use. ``reason`` is a stable counter name, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ControlReply:
    """Answer to SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, or an error reply.

    ``{"result":null,"id":1}`` or ``{"code":2,"msg":"Invalid request","id":7}``
    """

    id: int | None
    result: Any = None
    code: int | None = None
    msg: str | None = None

    @property
    def is_error(self) -> bool:
        return self.code is not None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed frame that carries no market fill (e.g. an ADL or insurance-fund trade)."""

    reason: str
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """One ``markPriceUpdate`` (see :func:`parse_mark_price`); prices in quote currency, the
    funding rate a fraction per funding interval, times epoch ms."""

    symbol: str
    mark_price: float
    index_price: float
    settle_price: float
    funding_rate: float
    next_funding_ms: int
    event_ms: int
    recv_ts: float


Parsed = Tick | ControlReply | Skipped | MarkPrice


def stream_name(symbol: str, kind: StreamKind = "aggTrade") -> str:
    """``("BTCUSDT", "aggTrade")`` -> ``"btcusdt@aggTrade"`` (stream names are lower case)."""
    return f"{symbol.lower()}@{kind}"


def mark_price_stream(symbol: str) -> str:
    """``"BTCUSDT"`` -> ``"btcusdt@markPrice@1s"`` (``market`` route, one update a second)."""
    return f"{symbol.lower()}@markPrice@1s"


def stream_symbol(name: str) -> str:
    """``"btcusdt@aggTrade"`` -> ``"BTCUSDT"``."""
    return name.split("@", 1)[0].upper()


def combined_url(host: str, route: str, streams: Sequence[str]) -> str:
    """``wss://fstream.binance.com`` + ``market`` -> ``.../market/stream?streams=a/b``.

    Since 2026-04-23 trade streams are only served on the ``market`` route; the old unrouted
    ``/stream`` address still accepts the handshake but stays silent.
    """
    base = f"{host.rstrip('/')}/{route.strip('/')}/stream"
    if not streams:
        return base
    return f"{base}?{urlencode({'streams': '/'.join(streams)}, safe='@/')}"


def control_message(method: str, request_id: int, params: Iterable[str] | None = None) -> bytes:
    """``{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}``"""
    message: dict[str, Any] = {"method": method, "id": request_id}
    if params is not None:
        message["params"] = list(params)
    return orjson.dumps(message)


def is_decimal_text(text: object) -> bool:
    """Plain ASCII decimal text such as ``"98231.40"``: what Binance sends, and what we keep.
    Refuses signs, exponents, ``nan``/``inf``, blanks, non-ASCII digits and leading zeros
    (``"007"``, ``"00.5"``: RedisTimeSeries refuses them as sample values). str methods run in
    C; a regex costs several times more on the hot path."""
    return (
        isinstance(text, str)
        and text.isascii()
        and text.replace(".", "", 1).isdigit()
        and text[0] != "."
        and text[-1] != "."
        and (text[0] != "0" or len(text) == 1 or text[1] == ".")
    )


def _decimal(payload: Mapping[str, Any], key: str) -> tuple[str, float]:
    text = payload[key]
    if not is_decimal_text(text):
        raise FrameError("bad_number", f"field {key!r} is not a decimal string: {text!r}")
    value = float(text)
    if value == math.inf:  # hundreds of digits: no double holds it, and inf would poison sums
        raise FrameError(
            "bad_number", f"field {key!r} is too large: {text[:40]}... ({len(text)} chars)"
        )
    return text, value


def _signed_decimal(payload: Mapping[str, Any], key: str) -> float:
    """A decimal string that may be negative (a funding rate)."""
    text = payload[key]
    if not is_decimal_text(text.removeprefix("-") if isinstance(text, str) else text):
        raise FrameError("bad_number", f"field {key!r} is not a decimal string: {text!r}")
    return float(text)


def _int(payload: Mapping[str, Any], key: str) -> int:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError("bad_number", f"field {key!r} is not a non-negative integer: {value!r}")
    return value


def _taker_side(data: Mapping[str, Any]) -> Literal["buy", "sell"]:
    """``m`` must be a JSON boolean: a string such as ``"false"`` would read as true."""
    maker = data["m"]
    if not isinstance(maker, bool):
        raise FrameError("bad_side", f"field 'm' is not true or false: {maker!r}")
    return "sell" if maker else "buy"


def _tick(
    data: Mapping[str, Any], id_key: str, event_key: str, recv_ts: float, source: str
) -> Tick:
    """The fields both trade payloads share; KeyError for a missing one."""
    price_text, price = _decimal(data, "p")
    qty_text, _ = _decimal(data, "q")
    if price <= 0:
        raise FrameError("bad_price", f"non-positive price {price_text!r}")
    return Tick(
        str(data["s"]),
        _int(data, id_key),
        price_text,
        qty_text,
        _taker_side(data),
        _int(data, "T"),
        _int(data, event_key),
        recv_ts,
        source,
    )


def parse_agg_trade(data: Mapping[str, Any], recv_ts: float, source: str = "binance") -> Tick:
    """An ``aggTrade`` payload (the ``data`` of a combined-stream frame)::

        {"e":"aggTrade","E":1795314919490,"s":"BTCUSDT","a":2871449921,"p":"98231.40",
         "q":"0.012","f":6198474650,"l":6198474651,"T":1795314919485,"m":true}

    ``a`` is the aggregate id (a gap means missed data); ``m`` true means the buyer was the
    maker, so the taker sold. Unknown fields are ignored.
    """
    try:
        return _tick(data, "a", "E" if "E" in data else "T", recv_ts, source)
    except KeyError as exc:
        raise FrameError("missing_field", f"aggTrade misses field {exc.args[0]!r}") from None


def parse_trade(data: Mapping[str, Any], recv_ts: float, source: str = "binance") -> Tick | Skipped:
    """A raw ``trade`` payload::

        {"e":"trade","E":1795314919490,"T":1795314919485,"s":"BTCUSDT","t":6198474651,
         "p":"98231.40","q":"0.012","X":"MARKET","m":false}

    Only ``X == "MARKET"`` fills are market trades; INSURANCE_FUND, ADL and NA fills are off-book
    (some carry price "0") and are skipped, not counted as errors.
    """
    try:
        kind = data["X"]
        if kind != "MARKET":
            return Skipped(f"not_market:{kind}", str(data.get("s", "")))
        return _tick(data, "t", "E", recv_ts, source)
    except KeyError as exc:
        raise FrameError("missing_field", f"trade misses field {exc.args[0]!r}") from None


def parse_mark_price(data: Mapping[str, Any], recv_ts: float) -> MarkPrice:
    """A ``markPriceUpdate`` payload (``<s>@markPrice@1s``, ``market`` route)::

        {"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",
         "i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}

    ``p`` mark price, ``i`` index price, ``P`` estimated settle price, ``r`` funding rate (a
    fraction per funding interval, paid by longs to shorts when positive; may be negative),
    ``T`` next funding time, ``E`` event time. Unknown fields are ignored. The funding interval
    is not in the payload: derive it from successive ``T`` values.
    """
    try:
        _, mark = _decimal(data, "p")
        _, index = _decimal(data, "i")
        if mark <= 0 or index <= 0:
            raise FrameError("bad_price", f"non-positive mark or index price in {data!r}")
        return MarkPrice(
            symbol=str(data["s"]),
            mark_price=mark,
            index_price=index,
            settle_price=_decimal(data, "P")[1] if "P" in data else float("nan"),
            funding_rate=_signed_decimal(data, "r"),
            next_funding_ms=_int(data, "T"),
            event_ms=_int(data, "E"),
            recv_ts=recv_ts,
        )
    except KeyError as exc:
        raise FrameError("missing_field", f"markPriceUpdate misses field {exc.args[0]!r}") from None


def mark_price_frame(mark: MarkPrice) -> bytes:
    """The combined-stream frame Binance would send for ``mark`` (the sim and the local
    server speak the protocol through this, so the parser is what reads them)."""
    return orjson.dumps(
        {
            "stream": mark_price_stream(mark.symbol),
            "data": {
                "e": "markPriceUpdate",
                "E": mark.event_ms,
                "s": mark.symbol,
                "p": f"{mark.mark_price:.8f}",
                "i": f"{mark.index_price:.8f}",
                "P": f"{mark.settle_price:.8f}",
                "r": f"{mark.funding_rate:.8f}",
                "T": mark.next_funding_ms,
            },
        }
    )  # fmt: skip  (the sim and the server always have a finite settle price)


def _plain_agg_trade(data: dict[str, Any], recv_ts: float, source: str) -> Tick | None:
    """The firehose's case in one pass: a well-formed ``aggTrade`` payload (see
    :func:`parse_agg_trade`) becomes its tick with no helper calls, about half the cost of
    the general path. Anything unusual (a missing or mistyped field, a number that is not
    plain decimal text, a zero price) answers None, and the general path then parses the
    payload again and names the defect, so both paths accept and refuse the same payloads."""
    try:
        symbol, price, qty, maker = data["s"], data["p"], data["q"], data["m"]
        agg_id, trade_ms, event_ms = data["a"], data["T"], data.get("E", data["T"])
    except KeyError:
        return None
    if not (
        type(price) is str and type(qty) is str and type(maker) is bool and type(symbol) is str
        and type(agg_id) is int and type(trade_ms) is int and type(event_ms) is int
        and agg_id >= 0 and trade_ms >= 0 and event_ms >= 0
        and price.isascii() and price.replace(".", "", 1).isdigit()
        and price[0] != "." and price[-1] != "." and (price[0] != "0" or price[1:2] in ("", "."))
        and qty.isascii() and qty.replace(".", "", 1).isdigit()
        and qty[0] != "." and qty[-1] != "." and (qty[0] != "0" or qty[1:2] in ("", "."))
        and len(price) < 300 and len(qty) < 300  # beyond that a double may overflow to inf
        and float(price) > 0.0
    ):  # fmt: skip
        return None
    side: Literal["buy", "sell"] = "sell" if maker else "buy"
    return Tick(symbol, agg_id, price, qty, side, trade_ms, event_ms, recv_ts, source)


def parse_message(message: Any, recv_ts: float, source: str = "binance") -> Parsed:
    """A decoded JSON message: combined-stream wrapper, bare payload or control reply."""
    if type(message) is dict:
        data = message.get("data", message)
        if type(data) is dict and data.get("e") == "aggTrade":
            tick = _plain_agg_trade(data, recv_ts, source)
            if tick is not None:
                return tick
    if not isinstance(message, dict):
        raise FrameError("not_object", f"frame is a JSON {type(message).__name__}, not an object")
    if "stream" in message and "data" in message:
        message = message["data"]
        if not isinstance(message, dict):
            raise FrameError("not_object", "combined-stream data is not an object")
    event = message.get("e")
    if event == "aggTrade":
        return parse_agg_trade(message, recv_ts, source)
    if event == "trade":
        return parse_trade(message, recv_ts, source)
    if event == "markPriceUpdate":
        return parse_mark_price(message, recv_ts)
    if event is None and "id" in message and ("result" in message or "code" in message):
        return ControlReply(
            id=message.get("id"),
            result=message.get("result"),
            code=message.get("code"),
            msg=message.get("msg"),
        )
    if event is None and "code" in message:  # an error reply without id (e.g. invalid JSON)
        return ControlReply(id=None, code=message.get("code"), msg=message.get("msg"))
    raise FrameError("unknown_event", f"unknown event type {event!r}")


def parse_frame(frame: bytes | str, recv_ts: float, source: str = "binance") -> Parsed:
    """One WebSocket text frame::

    {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade", ...}}
    """
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameError("malformed_json", f"frame is not JSON: {exc}") from None
    return parse_message(message, recv_ts, source)


def parse_rest_agg_trades(
    rows: Any, symbol: str, recv_ts: float, source: str = "binance"
) -> list[Tick]:
    """``GET /fapi/v1/aggTrades`` rows (no ``E``; trade time stands in for event time)::

    [{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,
      "m":true}]
    """
    if not isinstance(rows, list):
        raise FrameError("not_object", "aggTrades answer is not a JSON array")
    ticks = []
    for row in rows:
        if not isinstance(row, dict):
            raise FrameError("not_object", "aggTrades row is not an object")
        ticks.append(parse_agg_trade({**row, "s": symbol}, recv_ts, source))
    return ticks
