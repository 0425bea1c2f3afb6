"""What the engine reports about itself on ``channel:logs`` every heartbeat interval: batch
sizes, processing time per batch, end-to-end latency, job (refit, ADF, ...) durations, and how
far behind the stream heads it is.

End-to-end latency of a real trade = the moment the batch holding it was stored in Redis
(its pair snapshots written) minus the trade's ``recv`` stamp, the gateway's clock when the
frame arrived. Both clocks are this machine's wall clock.

Latencies go into a histogram with log-spaced bins (5% wide) rather than a sample list, so
reports are small and can be added up exactly: a benchmark (or anyone reading the log) merges
the reports of a period and reads its percentiles off the sum (:func:`percentile`), to
within one bin.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

BIN_BASE_MS: Final = 0.01
BIN_RATIO: Final = 1.05
_LOG_RATIO: Final = math.log(BIN_RATIO)


def bin_of(latency_ms: float) -> int:
    if latency_ms <= BIN_BASE_MS:
        return 0
    return int(math.log(latency_ms / BIN_BASE_MS) / _LOG_RATIO) + 1


def bin_upper_ms(index: int) -> float:
    """Upper edge of a bin: a latency in bin ``i`` is at most this."""
    return BIN_BASE_MS * BIN_RATIO**index


def percentile(hist: Mapping[int, int], q: float) -> float:
    """The ``q``-quantile (0..1) of a histogram, as its bin's upper edge."""
    total = sum(hist.values())
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return bin_upper_ms(index)
    return bin_upper_ms(max(hist))


def merge(hists: Iterable[Mapping[int | str, int]]) -> Counter[int]:
    """Sum of histograms (keys may be text, as after a JSON round trip)."""
    total: Counter[int] = Counter()
    for hist in hists:
        for key, count in hist.items():
            total[int(key)] += int(count)
    return total


@dataclass(slots=True)
class Report:
    """Counters of one reporting period."""

    batches: int = 0
    entries: int = 0
    batch_max: int = 0
    busy_ms: float = 0.0  # processing and writing, excluding the blocking read
    process_ms: list[float] = field(default_factory=list)
    latency: Counter[int] = field(default_factory=Counter)
    latency_max_ms: float = 0.0
    phase_ms: dict[str, float] = field(default_factory=dict)  # wall time per loop phase

    def add_phase(self, name: str, ms: float) -> None:
        self.phase_ms[name] = self.phase_ms.get(name, 0.0) + ms

    def add_batch(self, entries: int, process_ms: float) -> None:
        self.batches += 1
        self.entries += entries
        self.batch_max = max(self.batch_max, entries)
        self.busy_ms += process_ms
        self.process_ms.append(process_ms)

    def add_latencies(self, stored_ms: float, recv_ms: list[float]) -> None:
        if not recv_ms:
            return
        lat = stored_ms - np.asarray(recv_ms, dtype=np.float64)
        lat = lat[np.isfinite(lat)]  # a recv stamp the codec lets through (nan, inf)
        if lat.size == 0:
            return
        np.maximum(lat, BIN_BASE_MS, out=lat)
        bins = (np.log(lat / BIN_BASE_MS) / _LOG_RATIO).astype(np.int64) + 1
        values, counts = np.unique(bins, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self.latency[value] += count
        self.latency_max_ms = max(self.latency_max_ms, float(lat.max()))

    def summary(self, seconds: float) -> dict[str, Any]:
        process = np.asarray(self.process_ms) if self.process_ms else np.zeros(1)
        return {
            "batches": self.batches,
            "entries": self.entries,
            "entries_per_s": round(self.entries / seconds, 1) if seconds > 0 else 0.0,
            "batch_mean": round(self.entries / self.batches, 1) if self.batches else 0.0,
            "batch_max": self.batch_max,
            "busy_pct": round(100.0 * self.busy_ms / (seconds * 1000.0), 1) if seconds else 0.0,
            "process_ms_p50": round(float(np.percentile(process, 50)), 3),
            "process_ms_p99": round(float(np.percentile(process, 99)), 3),
            "process_ms_max": round(float(process.max()), 3),
            "latency_ms_p50": round(percentile(self.latency, 0.50), 3),
            "latency_ms_p99": round(percentile(self.latency, 0.99), 3),
            "latency_ms_max": round(self.latency_max_ms, 3),
            "latency_n": sum(self.latency.values()),
            "latency_hist": {str(k): v for k, v in sorted(self.latency.items())},
            # share of wall time per loop phase: read (incl. waiting), apply, write, jobs
            "time_pct": {
                name: round(100.0 * ms / (seconds * 1000.0), 1)
                for name, ms in sorted(self.phase_ms.items())
            }
            if seconds
            else {},
        }
