"""Rolling latency per symbol: receive minus event time, and event minus trade time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW = 2048  # most recent ticks per symbol


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

    def add(self, recv_ms: float, event_ms: int, trade_ms: int) -> None:
        self.ingest.add(recv_ms - event_ms)
        self.exchange.add(event_ms - trade_ms)

    def fields(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, ring in (("ingest", self.ingest), ("exchange", self.exchange)):
            summary = ring.summary()
            if summary is not None:
                out[f"latency_{name}_p50_ms"] = round(summary.p50, 3)
                out[f"latency_{name}_p99_ms"] = round(summary.p99, 3)
                out[f"latency_{name}_max_ms"] = round(summary.max, 3)
        return out
