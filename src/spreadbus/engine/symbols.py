"""One symbol's state: its 1-second grid, trade rate and volume, latencies, and the basis
between the real venue and the ghost venue. Pure: times come in as arguments.

Fields written to ``state:analytics:{SYMBOL}`` (the engine is its only writer; the gateway's
own feed figures live in ``state:feed:{SYMBOL}``):

- ``price``, ``price_ms``: the last real trade the engine has processed (or, right after a
  warm start, the last one in the price series), and its trade time;
- ``trade_rate_10s``: real trades per second over the last 10 s of trade time (over the time
  seen so far while the engine has seen less than that);
- ``volume_60s``: summed real quantity over the last 60 s of trade time;
- ``ingest_latency_ms``: receive minus exchange event time of the last real trade;
- ``bus_latency_ms``: when the engine built the fields minus that trade's receive time;
- ``basis_bps``, ``basis_bps_mean``, ``basis_ms``: ghost over real in bps
  (:func:`spreadbus.analytics.arbitrage_basis`): the latest matched ghost trade, the mean
  over the ghost trades matched since the previous figure (at most one per second), and the
  ghost trade time of the latest.

Basis matching is the library's as-of rule: a ghost trade is paired with the latest real
trade at or before its trade time. A ghost trade is held back while the real stream still has
entries waiting and has not reached the ghost's time yet, so a real trade read in a later
batch cannot be skipped by the match.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Final

from spreadbus.analytics import AnalyticsInputError, arbitrage_basis
from spreadbus.engine.entries import Points, TickPoint
from spreadbus.engine.grid import SymbolGrid

RATE_WINDOW_S: Final = 10
VOLUME_WINDOW_S: Final = 60
MATCH_HISTORY_MS: Final = 10_000  # real trades kept for matching ghost trades
BASIS_EVERY_MS: Final = 1_000

Number = float | int


class SymbolState:
    def __init__(self, symbol: str, history_s: int) -> None:
        self.symbol = symbol
        self.grid = SymbolGrid(history_s)
        self.real_idle = True  # the real stream had nothing more waiting at the last read
        self.touched = False  # new real trades since the pairs last looked
        self._buckets: deque[list[float]] = deque()  # [second, trades, volume], ascending
        self._first_sec: int | None = None
        self._real_ms: list[int] = []
        self._real_price: list[float] = []
        self._held_ms: list[int] = []  # ghost trades waiting for the real stream
        self._held_price: list[float] = []
        self._matched_real: list[float] = []
        self._matched_ghost: list[float] = []
        self._matched_ms = 0
        self._basis_wall_ms = 0.0
        self._last: TickPoint | None = None
        self.values: dict[str, Number] = {}
        self.basis_changed = False

    # ---- real trades ----------------------------------------------------------------------
    def add_real(self, points: Points) -> None:
        if not points:
            return
        grid_add = self.grid.add
        buckets = self._buckets
        bucket = buckets[-1] if buckets else None
        for trade_ms, price, qty in zip(points.trade_ms, points.price, points.qty, strict=True):
            grid_add(trade_ms, price)
            sec = trade_ms // 1000
            if bucket is not None and bucket[0] == sec:
                bucket[1] += 1
                bucket[2] += qty
            elif bucket is None or sec > bucket[0]:
                bucket = [sec, 1, qty]
                buckets.append(bucket)
            # an out-of-order trade time (never on a real stream) is left out of the counts
        real_ms, real_price = self._real_ms, self._real_price
        real_ms += points.trade_ms
        real_price += points.price
        if self._first_sec is None:
            self._first_sec = points.trade_ms[0] // 1000
        self._last = points.last()
        self.touched = True
        newest = buckets[-1][0]
        while buckets and buckets[0][0] <= newest - VOLUME_WINDOW_S:
            buckets.popleft()
        if len(real_ms) > 4096 and real_ms[0] < real_ms[-1] - MATCH_HISTORY_MS:
            cut = bisect.bisect_left(real_ms, real_ms[-1] - MATCH_HISTORY_MS)
            del real_ms[:cut]
            del real_price[:cut]

    # ---- ghost trades ---------------------------------------------------------------------
    def add_ghosts(self, points: Points) -> None:
        self._held_ms += points.trade_ms
        self._held_price += points.price

    def match_ghosts(self) -> None:
        """Pair held ghost trades with real ones (module docstring); call after the batch's
        real trades are in. Ghosts are matched in arrival order; the first that must wait
        keeps those behind it waiting too (their match cannot change by waiting: every real
        trade at or before them is already in)."""
        held_ms = self._held_ms
        if not held_ms:
            return
        real_ms, real_price = self._real_ms, self._real_price
        newest_real = real_ms[-1] if real_ms else -1
        done = 0
        matched_real, matched_ghost = self._matched_real, self._matched_ghost
        for ghost_ms, ghost_price in zip(held_ms, self._held_price, strict=True):
            if ghost_ms > newest_real and not self.real_idle:
                break
            done += 1
            i = bisect.bisect_right(real_ms, ghost_ms) - 1
            if i < 0:
                continue  # no real trade before it: unmatched, as in arbitrage_basis
            matched_real.append(real_price[i])
            matched_ghost.append(ghost_price)
            self._matched_ms = max(self._matched_ms, ghost_ms)
        del held_ms[:done]
        del self._held_price[:done]

    def update_basis(self, now_ms: float) -> None:
        """At most once a second (wall clock), the basis of the ghost trades matched since."""
        if not self._matched_ghost or now_ms - self._basis_wall_ms < BASIS_EVERY_MS:
            return
        try:
            basis = arbitrage_basis(self._matched_real, self._matched_ghost)
        except AnalyticsInputError:
            basis = None
        if basis is not None:
            bps = basis.to_numpy()
            self.values["basis_bps"] = float(bps[-1])
            self.values["basis_bps_mean"] = float(bps.mean())
            self.values["basis_ms"] = self._matched_ms
            self.basis_changed = True
        self._matched_real = []
        self._matched_ghost = []
        self._basis_wall_ms = now_ms

    # ---- output ---------------------------------------------------------------------------
    def fields(self, now_ms: float) -> dict[str, Number]:
        """The engine's per-symbol fields (module docstring)."""
        last = self._last
        if not self.grid.empty:  # the latest price, live or from the warm start
            self.values.update(price=self.grid.open_price, price_ms=self.grid.last_ms)
        if last is not None:
            buckets = self._buckets
            newest = buckets[-1][0] if buckets else 0
            recent = sum(b[1] for b in buckets if b[0] > newest - RATE_WINDOW_S)
            seen = newest - (self._first_sec if self._first_sec is not None else newest) + 1
            self.values.update(
                trade_rate_10s=recent / max(1, min(RATE_WINDOW_S, seen)),
                volume_60s=math.fsum(b[2] for b in buckets),
                ingest_latency_ms=round(last.recv_ms - last.event_ms, 3),
                bus_latency_ms=round(now_ms - last.recv_ms, 3),
            )
        self.values["engine_updated_ms"] = int(now_ms)
        return dict(self.values)
