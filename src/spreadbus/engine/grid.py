"""The 1-second grid: each symbol's last traded price per second, and a pair's aligned bars.

A bar is one second of trade time, ``sec = trade_ms // 1000``, holding the price of the last
trade in it: the same bars as :func:`spreadbus.analytics.resample` (``close``, left-closed,
labelled by their start) and as ``TS.RANGE ts:price:{S} ... AGGREGATION last 1000``, which is
what lets the warm start and an offline check reproduce the engine's windows exactly.

Why "last price" and nothing cumulative: applying a tick twice leaves the bar unchanged, so a
restart that re-reads a tick already reflected in the grid (the warm start reads the price
series up to the cursor's millisecond) does no harm.

When is a bar final? A symbol's real stream is ordered by trade time (its ids are ``<trade
ms>-<trade id>``), so once a tick of second ``s + 1`` has arrived, second ``s`` can no longer
change: every bar before the open one is final. A pair's bar ``s`` is final when it is final
for both legs; a leg without a trade in ``s`` carries its previous price forward (the
``resample`` empty-bar policy), and the pair starts at the later of the two legs' first bars
(an inner join of the two resampled legs).

A quiet leg would hold the pair back forever, so :class:`PairClock` lets the pair move on
without it once the other leg is ``stale_s`` seconds ahead *and* the quiet leg's stream has
nothing waiting (it is idle, not merely read later). Only then can a tick still arrive for a
second the pair has already closed; it then counts for the leg's open second instead. This is
the one place where the engine can differ from an offline resample, and it needs a leg that
is silent for ``stale_s`` seconds while the other trades.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

NO_BAR = -1


class SymbolGrid:
    """Last price per second of one symbol: a sparse history of closed bars and the open bar.

    Only seconds with trades are stored; :meth:`prices` fills the others forward. The history
    keeps ``span_s`` seconds (plus the bar before them, which later seconds may carry forward).
    """

    __slots__ = ("_prices", "_secs", "last_ms", "open_price", "open_sec", "span_s")

    def __init__(self, span_s: int) -> None:
        self.span_s = span_s
        self._secs: list[int] = []
        self._prices: list[float] = []
        self.open_sec = NO_BAR
        self.open_price = 0.0
        self.last_ms = 0  # trade time of the newest tick applied

    @property
    def empty(self) -> bool:
        return self.open_sec == NO_BAR

    @property
    def first_sec(self) -> int:
        """The oldest second the grid can price (NO_BAR when empty)."""
        return self._secs[0] if self._secs else self.open_sec

    @property
    def final_sec(self) -> int:
        """The newest second that can no longer change (NO_BAR when none)."""
        return self.open_sec - 1 if self.open_sec != NO_BAR else NO_BAR

    def add(self, trade_ms: int, price: float) -> None:
        """Apply one trade (trades of one symbol arrive in trade-time order)."""
        sec = trade_ms // 1000
        if sec > self.open_sec:
            if self.open_sec != NO_BAR:
                self._secs.append(self.open_sec)
                self._prices.append(self.open_price)
                if len(self._secs) > 2 * self.span_s + 64:
                    self._trim()
            self.open_sec = sec
        # sec < open_sec only for a trade older than the open second (see the module
        # docstring): it updates the open bar rather than rewrite a closed one.
        self.open_price = price
        self.last_ms = max(self.last_ms, trade_ms)

    def load(self, bars: Iterable[tuple[int, float]], last_ms: int) -> None:
        """Warm start: per-second last prices in ascending seconds; the newest is the open
        bar (it may still get trades), ``last_ms`` the trade time of the newest trade in it."""
        for sec, price in bars:
            self.add(sec * 1000, price)
        if self.open_sec != NO_BAR:
            self.last_ms = max(self.last_ms, last_ms)

    def _trim(self) -> None:
        cutoff = self.open_sec - self.span_s
        keep = bisect.bisect_left(self._secs, cutoff) - 1  # keep one bar before the cutoff
        if keep > 0:
            del self._secs[:keep]
            del self._prices[:keep]

    def prices(self, start: int, end: int) -> list[float]:
        """This leg's price for each second ``start..end`` (inclusive), carried forward;
        seconds at or after the open one use the open bar's latest price."""
        secs, prices = self._secs, self._prices
        i = bisect.bisect_right(secs, start) - 1
        out: list[float] = []
        n = len(secs)
        for sec in range(start, end + 1):
            while i + 1 < n and secs[i + 1] <= sec:
                i += 1
            if sec >= self.open_sec:
                out.append(self.open_price)
            elif i >= 0:
                out.append(prices[i])
            else:  # before the first bar: callers start at first_sec, so this never happens
                raise ValueError(f"no price at second {sec}, the grid starts at {self.first_sec}")
        return out

    def closed_bars(self) -> list[tuple[int, float]]:
        """The stored closed bars, oldest first (for tests and diagnostics)."""
        return list(zip(self._secs, self._prices, strict=True))


@dataclass(slots=True)
class PairClock:
    """Which bars of a pair ``y/x`` are final and due, in order, each exactly once."""

    stale_s: int
    max_bars: int  # a longer gap (both legs silent) skips ahead: older bars leave the window
    next_sec: int = NO_BAR

    def due(
        self, y: SymbolGrid, x: SymbolGrid, y_idle: bool = True, x_idle: bool = True
    ) -> list[tuple[int, float, float]]:
        """The bars ``(sec, y price, x price)`` that became final since the last call.

        ``*_idle``: that leg's stream had nothing more waiting at the last read, so its
        silence is real (see the module docstring).
        """
        if y.empty or x.empty:
            return []
        end = min(y.final_sec, x.final_sec)
        lead = max(y.final_sec, x.final_sec)
        if lead - end > self.stale_s:
            laggard_idle = x_idle if x.final_sec < y.final_sec else y_idle
            if laggard_idle:
                end = lead - self.stale_s
        start = max(self.next_sec, y.first_sec, x.first_sec)
        if end < start:
            return []
        start = max(start, end - self.max_bars + 1)
        self.next_sec = end + 1
        secs = range(start, end + 1)
        return list(zip(secs, y.prices(start, end), x.prices(start, end), strict=True))
