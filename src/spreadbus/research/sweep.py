"""Parameter sweeps in the background: the backtest's Sharpe ratio over a grid of entry z
by window, with progress, cancellation and the grid as it fills.

A sweep runs in a daemon thread (the backtest is pure computation), one cell at a time,
checking for cancellation between cells, so the web process and its pages keep answering.
:data:`BOOK` keeps the latest :data:`KEEP` sweeps of the process, for the API and the pages.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from spreadbus.analytics import AnalyticsInputError
from spreadbus.research.backtest import BacktestParams, simulate

KEEP: Final = 20
MAX_CELLS: Final = 400
Status = Literal["running", "done", "cancelled", "failed"]


@dataclass
class Sweep:
    id: str
    entry_zs: list[float]
    windows: list[int]
    status: Status = "running"
    done: int = 0
    error: str | None = None
    sharpe: list[list[float | None]] = field(default_factory=list)  # [window][entry_z]
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return len(self.entry_zs) * len(self.windows)

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "entry_z": list(self.entry_zs),
            "windows": list(self.windows),
            "sharpe": [list(row) for row in self.sharpe],
            "error": self.error,
        }


def _cell(y: np.ndarray, x: np.ndarray, params: BacktestParams) -> float | None:
    try:
        result, _, _ = simulate(y, x, params)
    except AnalyticsInputError:
        return None  # e.g. an entry z below the exit z, a window longer than the data
    return result.sharpe if math.isfinite(result.sharpe) else None


def _run(sweep: Sweep, y: np.ndarray, x: np.ndarray, base: BacktestParams) -> None:
    try:
        for i, window in enumerate(sweep.windows):
            for j, entry_z in enumerate(sweep.entry_zs):
                if sweep.cancel_event.is_set():
                    sweep.status = "cancelled"
                    return
                params = dataclasses.replace(base, window=window, entry_z=entry_z)
                sweep.sharpe[i][j] = _cell(y, x, params)
                sweep.done += 1
        sweep.status = "done"
    except Exception as exc:  # a bug must show as a failed sweep, not a silent thread death
        sweep.status, sweep.error = "failed", repr(exc)


class SweepBook:
    """The process's sweeps, newest last; the oldest finished ones are forgotten."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._sweeps: OrderedDict[str, Sweep] = OrderedDict()
        self._lock = threading.Lock()

    def start(
        self,
        y: np.ndarray,
        x: np.ndarray,
        base: BacktestParams,
        entry_zs: list[float],
        windows: list[int],
    ) -> Sweep:
        """Start a sweep; ValueError when the grid is empty or over :data:`MAX_CELLS`."""
        cells = len(entry_zs) * len(windows)
        if cells == 0 or cells > MAX_CELLS:
            raise ValueError(f"a sweep has 1 to {MAX_CELLS} cells, got {cells}")
        sweep = Sweep(secrets.token_hex(8), list(entry_zs), list(windows))
        sweep.sharpe = [[None] * len(entry_zs) for _ in windows]
        with self._lock:
            self._sweeps[sweep.id] = sweep
            while len(self._sweeps) > self._keep:
                oldest = next(iter(self._sweeps.values()))
                oldest.cancel_event.set()
                self._sweeps.pop(oldest.id)
        thread = threading.Thread(
            target=_run, args=(sweep, y, x, base), name=f"sweep-{sweep.id}", daemon=True
        )
        thread.start()
        return sweep

    def get(self, sweep_id: str) -> Sweep | None:
        with self._lock:
            return self._sweeps.get(sweep_id)

    def cancel(self, sweep_id: str) -> Sweep | None:
        sweep = self.get(sweep_id)
        if sweep is not None:
            sweep.cancel_event.set()
        return sweep


BOOK: Final = SweepBook()
