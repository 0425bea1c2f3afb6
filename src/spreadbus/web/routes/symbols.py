"""``/api/symbols/{symbol}``: a symbol's snapshot, its 1-minute candles, its latest ticks."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import CodecError, Tick
from spreadbus.web import read
from spreadbus.web.deps import Client
from spreadbus.web.export import csv_response, iso_ms
from spreadbus.web.fields import Scalar, typed_fields
from spreadbus.web.names import SymbolName

MAX_TICKS: Final = 10_000
TICK_COLUMNS: Final = (
    "stream_id", "symbol", "trade_id", "price", "qty", "side",
    "trade_ts", "event_ts", "recv_ts", "source",
)  # fmt: skip

router = APIRouter(tags=["symbols"])


class SymbolSnapshot(BaseModel):
    symbol: str
    fields: dict[str, Scalar]


class Candle(BaseModel):
    ts: int  # the minute's start, epoch ms
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None


class Candles(BaseModel):
    symbol: str
    interval: read.CandleInterval = "1m"
    candles: list[Candle]


@router.get(
    "/symbols/{symbol}/ohlc",
    response_model=Candles,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV"}},
)
async def ohlc(
    name: SymbolName,
    client: Client,
    minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
    interval: Annotated[
        read.CandleInterval,
        Query(description="1m, or 5m/15m/1h made from the exact 1m candles"),
    ] = "1m",
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Candles | Response:
    """The candles of the last ``minutes`` up to the newest one, which is the current
    candle as far as it has traded (``TS.RANGE ... LATEST``). Longer intervals aggregate the
    1-minute candles (first open, highest high, lowest low, last close, summed volume),
    starting at multiples of the interval since the epoch."""
    rows = await read.candles(client, name, minutes, interval)
    if rows is None:
        raise HTTPException(404, detail=f"no candles for {name}")
    if fmt == "csv":
        return csv_response(
            ["ts_ms", "time", *keys.CANDLE_FIELDS],
            ([row[0], iso_ms(row[0]), *row[1:]] for row in rows),
            f"ohlc_{name}_{interval}.csv",
        )
    candles = [
        Candle(ts=ts, open=o, high=h, low=lo, close=c, volume=v) for ts, o, h, lo, c, v in rows
    ]
    return Candles(symbol=name, interval=interval, candles=candles)


def _tick_row(stream_id: bytes, tick: Tick) -> list[object]:
    return [
        stream_id, tick.symbol, tick.trade_id, tick.price, tick.qty, tick.side,
        tick.trade_ts, tick.event_ts, f"{tick.recv_ts:.3f}", tick.source,
    ]  # fmt: skip


@router.get("/symbols/{symbol}/ticks.csv", response_class=Response)
async def ticks_csv(
    name: SymbolName,
    client: Client,
    limit: Annotated[int, Query(ge=1, le=MAX_TICKS)] = 1000,
    venue: Literal["real", "ghost"] = "real",
) -> Response:
    """The latest ``limit`` ticks of the stream, oldest first, prices and quantities in the
    exchange's exact decimal text."""
    key = keys.tick_stream(name) if venue == "real" else keys.ghost_stream(name)
    async with client.pipeline(transaction=False) as pipe:
        pipe.exists(key)
        pipe.xrevrange(key, "+", "-", count=limit)
        exists, entries = await pipe.execute()
    if not exists:
        raise HTTPException(404, detail=f"no {venue} tick stream for {name}")
    rows: list[list[object]] = []
    for stream_id, fields in reversed(entries):
        try:
            rows.append(_tick_row(stream_id, tickschema.decode(fields, stream_id, name)))
        except CodecError:
            continue  # not a tick: the gateway never writes one, skip what someone else did
    return csv_response(TICK_COLUMNS, rows, f"ticks_{name}_{venue}.csv")


@router.get("/symbols/{symbol}", response_model=SymbolSnapshot)
async def symbol_snapshot(name: SymbolName, client: Client) -> SymbolSnapshot:
    """The symbol's latest snapshot: the gateway's ``state:feed:{SYMBOL}`` (last price, tick
    rate, latencies, ghost price, source) and the engine's ``state:analytics:{SYMBOL}`` (trade
    rate, volume, basis); the two hashes share no field name."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.feed_state(name))
        pipe.hgetall(keys.analytics_state(name))
        feed, engine = await pipe.execute()
    raw: Any = {**feed, **engine}
    if not raw:
        raise HTTPException(404, detail=f"no snapshot for symbol {name}")
    return SymbolSnapshot(symbol=name, fields=typed_fields(raw))
