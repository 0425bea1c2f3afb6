"""Shared by the engine tests: simulated ticks, stream entries, and the offline reference.

The reference uses only :mod:`spreadbus.analytics` (and pandas), never engine code: each
leg's ticks resampled to 1-second bars (``close``, empty seconds carried forward), the legs
inner-joined, the window ending at the bar the engine reports, and every statistic computed
on that window in one batch call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spreadbus import analytics as an
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.bus.tickschema import to_fields
from spreadbus.config import Settings
from spreadbus.engine import pairstate
from spreadbus.engine.service import QuantEngine
from spreadbus.gateway.ghost import GhostConfig, GhostVenue
from spreadbus.gateway.sim import SimConfig, SimMarket
from spreadbus.testing.poll import until
from spreadbus.testing.services import running_service

START_MS = 1_795_314_900_000  # a whole second, 2026-11-22
Entry = tuple[bytes, dict[bytes, bytes]]


# Bursts of 4x rather than the live default of 60x: the same kind of market with a tenth of
# the trades, so the tests stay quick.
TEST_MARKET = SimConfig(burst_rate_mult=4.0)


def sim_ticks(
    pairs: Sequence[str], seconds: int, seed: int = 7, start_ms: int = START_MS
) -> list[Tick]:
    """The simulated market's real ticks over ``seconds`` of trade time, in trade order."""
    market = SimMarket(pairs, seed=seed, start_ms=start_ms, config=TEST_MARKET)
    out: list[Tick] = []
    for batch in market.ticks(start_ms + seconds * 1000, recv_ts=0.0):
        out.extend(batch)
    # a receive time a few ms after the event, as a gateway would stamp it
    return [
        Tick(t.symbol, t.trade_id, t.price, t.qty, t.side, t.trade_ts, t.event_ts,
             t.event_ts + 3.25, t.source)
        for t in out
    ]  # fmt: skip


def ghost_ticks(ticks: Iterable[Tick], seed: int = 3) -> list[Tick]:
    """The ghost venue's twin of every real tick (delays resolved at once)."""
    venue = GhostVenue(GhostConfig(dislocation_prob=0.01), seed)
    venue.shadow_many(list(ticks))  # the same ghosts as one tick at a time (test_ghost.py)
    return venue.due(math.inf)


def stream_entries(ticks: Iterable[Tick], ghost: bool = False) -> dict[str, list[Entry]]:
    """Stream key -> entries as XREAD returns them (ghost ids made up in arrival order)."""
    out: dict[str, list[Entry]] = {}
    for seq, tick in enumerate(ticks, start=1):
        key = keys.ghost_stream(tick.symbol) if ghost else keys.tick_stream(tick.symbol)
        entry_id = f"{int(tick.recv_ts)}-{seq}" if ghost else tick.stream_id
        fields = {k.encode(): v.encode() for k, v in to_fields(tick, ghost=ghost).items()}
        out.setdefault(key, []).append((entry_id.encode(), fields))
    return out


def leg_closes(ticks: Iterable[Tick], symbol: str) -> pd.Series:
    rows = [(t.trade_ts, float(t.price), float(t.qty)) for t in ticks if t.symbol == symbol]
    frame = pd.DataFrame(rows, columns=["ts", "price", "qty"])
    return an.resample(frame, "1s")["close"]


def pair_bars(ticks: Sequence[Tick], pair: str) -> pd.DataFrame:
    """The pair's 1-second grid: columns y, x, indexed by bar start in epoch ms."""
    y, x = pair.split("/")
    bars = pd.concat({"y": leg_closes(ticks, y), "x": leg_closes(ticks, x)}, axis=1, join="inner")
    bars.index = bars.index.as_unit("ms").asi8
    return bars


def last_price(ticks: Sequence[Tick], symbol: str) -> float:
    return next(float(t.price) for t in reversed(ticks) if t.symbol == symbol)


@dataclass(frozen=True)
class Reference:
    """Offline figures for one pair at one bar."""

    beta: float
    alpha: float
    spread_bar: float
    zscore_bar: float
    spread_std: float
    corr: float
    n: int


def reference_at(bars: pd.DataFrame, bar_ms: int, window: int) -> Reference:
    upto = bars.loc[:bar_ms]
    w = upto.iloc[-window:]
    y, x = w["y"].to_numpy(), w["x"].to_numpy()
    fit = an.ols_hedge(y, x)
    sp = an.spread(y, x, fit.beta, fit.alpha)
    # one-second returns of the bars so far, at most ``window`` of them (pandas, two-pass)
    returns = upto[["y", "x"]].pct_change().iloc[1:].iloc[-window:]
    corr = float(returns["y"].corr(returns["x"])) if len(w) >= pairstate.MIN_BARS else math.nan
    return Reference(
        beta=fit.beta,
        alpha=fit.alpha,
        spread_bar=float(sp[-1]),
        zscore_bar=an.zscore(sp, len(sp)).last,
        spread_std=float(np.std(sp, ddof=1)),
        corr=corr,
        n=len(w),
    )


def window_arrays(bars: pd.DataFrame, bar_ms: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    w = bars.loc[:bar_ms].iloc[-window:]
    return w["y"].to_numpy(), w["x"].to_numpy()


def kalman_reference(bars: pd.DataFrame, bar_ms: int) -> float:
    """Kalman beta after the bar, filtering scaled returns since the first bar (price units)."""
    upto = bars.loc[:bar_ms]
    y0, x0 = float(upto["y"].iloc[0]), float(upto["x"].iloc[0])
    scale = pairstate.KALMAN_SCALE
    result = an.kalman_hedge(
        scale * (upto["y"].to_numpy() / y0 - 1), scale * (upto["x"].to_numpy() / x0 - 1),
        pairstate.KALMAN_DELTA, pairstate.KALMAN_OBS_VAR,
    )  # fmt: skip
    return float(result.beta[-1]) * y0 / x0


def read_in_rounds(
    streams: dict[str, list[Entry]], count: int
) -> Iterable[list[tuple[str, list[Entry], bool]]]:
    """Batches as XREAD COUNT ``count`` would return them from fully written streams: up to
    ``count`` entries of each stream per read, real streams first; flag = nothing more waits."""
    offsets = dict.fromkeys(streams, 0)
    order = sorted(streams, key=lambda k: k.endswith(keys.GHOST_SUFFIX))
    while any(offsets[k] < len(streams[k]) for k in order):
        batch = []
        for key in order:
            chunk = streams[key][offsets[key] : offsets[key] + count]
            offsets[key] += len(chunk)
            if chunk:
                batch.append((key, chunk, offsets[key] >= len(streams[key])))
        yield batch


async def publish(
    client: AsyncRedis,
    ticks: Sequence[Tick],
    ghosts: Sequence[Tick] = (),
    flush_ms: int = 500,
    pause_s: float = 0.0,
) -> None:
    """Write ticks the way the gateway does (the real TickWriter, one FCALL per symbol per
    flush), one flush per ``flush_ms`` of trade time; a ghost goes in the flush of its own
    (delayed) trade time."""
    writer = TickWriter(client)
    await writer.prepare(sorted({t.symbol for t in ticks}))
    flushes: dict[int, dict[str, SymbolBatch]] = {}
    for tick in ticks:
        batch = flushes.setdefault(tick.trade_ts // flush_ms, {})
        batch.setdefault(tick.symbol, SymbolBatch([], [])).ticks.append(tick)
    for tick in ghosts:
        batch = flushes.setdefault(tick.trade_ts // flush_ms, {})
        batch.setdefault(tick.symbol, SymbolBatch([], [])).ghosts.append(tick)
    for key in sorted(flushes):
        await writer.write(flushes[key])
        if pause_s:
            await asyncio.sleep(pause_s)


def engine_settings(settings: Settings, pairs: Sequence[str], window: int = 60) -> Settings:
    return Settings(
        redis_url=settings.redis_url, data_dir=settings.data_dir, pairs=tuple(pairs),
        window=window, heartbeat_interval=0.5,
    )  # fmt: skip


def decoded(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


async def eventually(
    predicate: Callable[[], Awaitable[object]], within: float = 20.0, what: str = ""
) -> object:
    """Poll an async predicate until it returns something true; that value."""
    return await until(predicate, within, what or repr(predicate))


def running_engine(settings: Settings) -> contextlib.AbstractAsyncContextManager[QuantEngine]:
    """The engine in this event loop, on its own connection, stopped on exit."""
    return running_service(QuantEngine, settings, stop_timeout=15)
