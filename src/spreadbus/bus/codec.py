"""The three messages that travel on the bus: Tick, Alert and LogEvent.

How a tick sits in a stream entry is :mod:`spreadbus.bus.tickschema`'s (readable with
``redis-cli XRANGE``); alerts and log events travel as JSON on Pub/Sub channels. Every
decoder raises :class:`CodecError` with the reason, never a bare KeyError, so consumers can
count and skip a bad entry.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import orjson

Side = Literal["buy", "sell"]
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVELS: tuple[Level, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class CodecError(ValueError):
    """A message could not be decoded; the text says which field and why."""


class Tick(NamedTuple):
    """One trade, normalized. Prices and quantities keep the exchange's exact decimal text.

    A NamedTuple rather than a frozen dataclass: it is as immutable and several times cheaper
    to create, and the gateway creates two per trade (real and ghost).
    """

    symbol: str
    trade_id: int
    price: str
    qty: str
    side: Side  # the taker's side: "sell" when the buyer was the maker
    trade_ts: int  # T: exchange trade time, epoch ms
    event_ts: int  # E: exchange event time, epoch ms
    recv_ts: float  # local wall clock when the frame arrived, epoch ms (sub-ms precision)
    source: str  # binance | sim | replay | ghost

    @property
    def price_f(self) -> float:
        return float(self.price)

    @property
    def qty_f(self) -> float:
        return float(self.qty)

    @property
    def stream_id(self) -> str:
        """``<trade time>-<trade id>``: strictly increasing per symbol, so Redis itself refuses a
        trade that was already published (XADD with an id not above the last one fails)."""
        return f"{self.trade_ts}-{self.trade_id}"


def tick_to_json(tick: Tick) -> bytes:
    return orjson.dumps(tick._asdict())


def tick_from_json(data: bytes | str) -> Tick:
    try:
        return Tick(**orjson.loads(data))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CodecError(f"not a tick: {exc}") from None


@dataclass(slots=True, frozen=True)
class Alert:
    """A rule crossing its threshold for one pair (or symbol)."""

    rule_id: str
    pair: str
    metric: str
    op: str
    value: float
    threshold: float
    time_ms: int
    message: str = ""


def alert_to_json(alert: Alert) -> bytes:
    return orjson.dumps(asdict(alert))


def alert_from_json(data: bytes | str) -> Alert:
    try:
        return Alert(**orjson.loads(data))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CodecError(f"not an alert: {exc}") from None


def now_iso() -> str:
    """UTC wall clock as ISO-8601 with milliseconds: ``2026-11-22T02:48:15.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True, frozen=True)
class LogEvent:
    """A structured log line: what every service publishes on ``channel:logs``."""

    level: Level
    service: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=now_iso)


def log_event_to_json(event: LogEvent) -> bytes:
    """Never fails: a field orjson cannot encode (a Path, an exception, an integer beyond 64
    bits) is written as text rather than losing the event."""
    try:
        return orjson.dumps(asdict(event), default=str)
    except TypeError:
        return json.dumps(asdict(event), default=str).encode()


def log_event_from_json(data: bytes | str) -> LogEvent:
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise CodecError("log event is not a JSON object")
        level = str(raw.get("level", "INFO")).upper()
        return LogEvent(
            level=level if level in LEVELS else "INFO",
            service=str(raw["service"]),
            event=str(raw["event"]),
            fields=dict(raw.get("fields") or {}),
            time=str(raw.get("time") or now_iso()),
        )
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"log event is not JSON: {exc}") from None
    except KeyError as exc:
        raise CodecError(f"log event misses field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CodecError(f"log event is malformed: {exc}") from None


def epoch_ms() -> float:
    """Wall clock in epoch milliseconds with sub-millisecond precision."""
    return time.time_ns() / 1e6
