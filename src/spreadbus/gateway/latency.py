"""Rolling latency per symbol: receive minus event time, and event minus trade time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter, sub

import numpy as np

from spreadbus.bus.codec import Tick

WINDOW = 2048  # most recent ticks per symbol
_TRADE_MS, _EVENT_MS, _RECV_MS = itemgetter(5), itemgetter(6), itemgetter(7)  # Tick positions


@dataclass(frozen=True, slots=True)
class LatencySummary:
    p50: float
    p99: float
    max: float
    n: int


class RollingLatency:
    """Fixed-size ring of the last :data:`WINDOW` samples; O(1) to add, O(n) to summarize."""

    def __init__(self, window: int = WINDOW) -> None:
        # a list, not numpy: per-item assignment on the hot path is several times cheaper
        self._values: list[float] = [0.0] * window
        self._size = window
        self._next = 0
        self._count = 0

    def add(self, value: float) -> None:
        self._values[self._next] = value
        self._next = (self._next + 1) % self._size
        self._count += 1

    def add_many(self, values: Sequence[float]) -> None:
        """Values in order, as :meth:`add` one by one would (slice assignments: C loops)."""
        size, n = self._size, len(values)
        self._count += n
        start, end = self._next, self._next + n
        if n >= size:  # only the last ``size`` stay, the oldest of them at the new _next
            tail, first = values[n - size :], end % size
            self._values[first:] = tail[: size - first]
            self._values[:first] = tail[size - first :]
            self._next = first
            return
        if end <= size:
            self._values[start:end] = values
        else:
            self._values[start:] = values[: size - start]
            self._values[: end - size] = values[size - start :]
        self._next = end % size

    def summary(self) -> LatencySummary | None:
        n = min(self._count, self._size)
        if n == 0:
            return None
        window = np.asarray(self._values[:n])
        p50, p99 = np.percentile(window, [50, 99])
        return LatencySummary(float(p50), float(p99), float(window.max()), n)


class SymbolLatency:
    """Both latencies of one symbol."""

    def __init__(self) -> None:
        self.ingest = RollingLatency()  # receive time - event time: network + our queueing
        self.exchange = RollingLatency()  # event time - trade time: inside the exchange

    def add_ticks(self, ticks: Sequence[Tick]) -> None:
        """Both latencies of a batch of ticks, in C loops (no Python step per tick)."""
        events = list(map(_EVENT_MS, ticks))
        self.ingest.add_many(list(map(sub, map(_RECV_MS, ticks), events)))
        self.exchange.add_many(list(map(sub, events, map(_TRADE_MS, ticks))))

    def fields(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, ring in (("ingest", self.ingest), ("exchange", self.exchange)):
            summary = ring.summary()
            if summary is not None:
                out[f"latency_{name}_p50_ms"] = round(summary.p50, 3)
                out[f"latency_{name}_p99_ms"] = round(summary.p99, 3)
                out[f"latency_{name}_max_ms"] = round(summary.max, 3)
        return out
