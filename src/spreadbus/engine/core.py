"""The engine without Redis: stream entries in, one :class:`WriteSet` per batch out.

A batch is everything one read returned. :meth:`EngineCore.ingest` takes each stream's
entries (real streams before ghost streams), :meth:`EngineCore.step` then advances every
touched pair once (bars that became final, then the live spread and z-score from the latest
prices), evaluates the alert rules and returns what to write: each touched pair's changed
fields and new chart samples, symbol fields, alerts, alert states, and the read position
(last id, entries processed, bad entries) of every stream the batch touched.
:meth:`EngineCore.run_jobs` runs deferred statistics between batches.

Processed/bad counts are per stream and only ever grow by the entries a batch consumed, so
with the cursor they are the proof of exactly-once processing: they are stored with the
cursor, atomically with the batch's results (:mod:`spreadbus.engine.writer`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from spreadbus.analytics import LegFunding
from spreadbus.bus import keys
from spreadbus.bus.codec import Alert
from spreadbus.engine.alerts import AlertBook, Rule
from spreadbus.engine.entries import CodecError, Fields, decode_many
from spreadbus.engine.jobs import JobQueue
from spreadbus.engine.pairstate import PairState
from spreadbus.engine.symbols import SymbolState

STALE_S: Final = 3  # a pair moves on without a leg silent this long (see grid.py)
SYMBOL_WRITE_EVERY_MS: Final = 250  # per-symbol fields are for people: four times a second

Entry = tuple[bytes | str, Fields]
Number = float | int


@dataclass(slots=True)
class StreamPosition:
    """Where the engine is in one stream: last id processed, entries processed, bad ones."""

    last_id: str = "0-0"
    processed: int = 0
    bad: int = 0


@dataclass(slots=True)
class WriteSet:
    """What one batch writes (see the module docstring)."""

    pair_fields: dict[str, dict[str, Number]] = field(default_factory=dict)
    pair_series: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)
    symbol_fields: dict[str, dict[str, Number]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    alert_states: dict[str, bytes | None] = field(default_factory=dict)
    positions: dict[str, StreamPosition] = field(default_factory=dict)  # streams moved
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # all: processed, bad
    recv_ms: list[float] = field(default_factory=list)  # real trades of the batch: latency

    def __bool__(self) -> bool:
        return bool(
            self.pair_fields or self.pair_series or self.symbol_fields or self.alerts
            or self.alert_states or self.positions
        )  # fmt: skip


@dataclass(slots=True)
class BadEntry:
    stream: str
    entry_id: str
    reason: str


def history_span(window: int) -> int:
    """Seconds of bars kept per symbol: the window twice over (the Kalman filter and a pair
    added at run time start from it) plus a margin."""
    return 2 * window + 10


class EngineCore:
    def __init__(self, window: int, rules: Iterable[Rule] = ()) -> None:
        self.window = window
        self.history_s = history_span(window)
        self.symbols: dict[str, SymbolState] = {}
        self.pairs: dict[str, PairState] = {}
        self.alerts = AlertBook(rules)
        self.jobs = JobQueue()
        self.positions: dict[str, StreamPosition] = {}
        self.bad_entries: list[BadEntry] = []  # since the last take, for logging
        self.ticks = 0
        self.bad = 0
        self._moved: dict[str, StreamPosition] = {}
        self._touched_pairs: set[str] = set()
        self._recv: list[float] = []
        self._symbol_written: dict[str, float] = {}
        self._symbols_unwritten: set[str] = set()

    # ---- configuration ---------------------------------------------------------------------
    def add_symbol(
        self, symbol: str, bars: Iterable[tuple[int, float]] = (), last_ms: int = 0
    ) -> SymbolState:
        """Start following a symbol, its grid warmed with per-second last prices."""
        state = self.symbols.get(symbol)
        if state is None:
            state = self.symbols[symbol] = SymbolState(symbol, self.history_s)
            state.grid.load(bars, last_ms)
            if not state.grid.empty:
                self._symbols_unwritten.add(symbol)  # its warm price, before any new trade
        return state

    def set_position(self, stream: str, position: StreamPosition) -> None:
        self.positions[stream] = position

    def add_pair(self, pair: str) -> PairState:
        """Start analysing a pair whose legs were added: its windows are built at once from
        the legs' history, and every statistic is scheduled for the newest bar."""
        state = self.pairs.get(pair)
        if state is not None:
            return state
        state = PairState(pair, self.window, STALE_S, self.history_s)
        self.pairs[state.pair] = state
        y, x = self.symbols[state.y], self.symbols[state.x]
        for job in state.on_bars(state.clock.due(y.grid, x.grid), live=False):
            self.jobs.add(job)
        if not (y.grid.empty or x.grid.empty):
            state.on_prices(
                y.grid.open_price, x.grid.open_price, max(y.grid.last_ms, x.grid.last_ms)
            )
        self._touched_pairs.add(state.pair)
        return state

    def remove_pair(self, pair: str) -> None:
        if self.pairs.pop(pair, None) is not None:
            self.jobs.drop_pair(pair)
            self.alerts.forget(pair)
            self._touched_pairs.discard(pair)

    def remove_symbol(self, symbol: str) -> None:
        self.symbols.pop(symbol, None)
        self.alerts.forget(symbol)
        self._symbol_written.pop(symbol, None)
        self._symbols_unwritten.discard(symbol)
        for stream in (keys.tick_stream(symbol), keys.ghost_stream(symbol)):
            self.positions.pop(stream, None)
            self._moved.pop(stream, None)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        self.alerts.set_rules(rules)

    # ---- a batch ----------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """Before ingesting a read: streams it returns nothing for had nothing waiting."""
        for state in self.symbols.values():
            state.real_idle = True

    def ingest(self, stream: str, entries: Sequence[Entry], idle: bool = True) -> None:
        """One stream's entries from a read; ``idle``: the read returned all that waited
        (fewer entries than its COUNT). Bad entries are counted and skipped."""
        symbol, is_ghost = keys.stream_symbol(stream)
        state = self.symbols.get(symbol)
        if state is None or not entries:
            return
        position = self.positions.setdefault(stream, StreamPosition())
        points, bad = decode_many(entries)
        for entry_id, exc in bad:
            position.bad += 1
            self.bad += 1
            text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            reason = str(exc) if isinstance(exc, CodecError) else f"undecodable: {exc}"
            self.bad_entries.append(BadEntry(stream, text, reason))
        last_id = entries[-1][0]
        position.last_id = last_id.decode() if isinstance(last_id, bytes) else last_id
        position.processed += len(points)
        self.ticks += len(points)
        self._moved[stream] = position
        if is_ghost:
            state.add_ghosts(points)
        else:
            state.real_idle = idle
            state.add_real(points)
            self._recv += points.recv_ms

    def step(self, now_ms: float) -> WriteSet:
        """Advance touched pairs, evaluate alerts, and collect the batch's writes."""
        out = WriteSet()
        for symbol_state in self.symbols.values():
            symbol_state.match_ghosts()
            symbol_state.update_basis(now_ms)
        for pair, state in self.pairs.items():
            y, x = self.symbols[state.y], self.symbols[state.x]
            if not (y.touched or x.touched):
                continue
            for job in state.on_bars(state.clock.due(y.grid, x.grid, y.real_idle, x.real_idle)):
                self.jobs.add(job)
            if not (y.grid.empty or x.grid.empty):
                tick_ms = max(y.grid.last_ms, x.grid.last_ms)
                state.on_prices(y.grid.open_price, x.grid.open_price, tick_ms)
            self._touched_pairs.add(pair)
        for pair in self._touched_pairs:
            state = self.pairs[pair]
            changes = state.take_changes()
            if changes:
                changes["updated_ms"] = int(now_ms)
                out.pair_fields[pair] = changes
            series = state.take_series()
            if series:
                out.pair_series[pair] = series
            out.alerts += self.alerts.evaluate(
                pair, "pair", state.values, int(state.values["tick_ms"])
            )
        self._touched_pairs.clear()
        for symbol, symbol_state in self.symbols.items():
            if symbol_state.touched:
                symbol_state.touched = False
                self._symbols_unwritten.add(symbol)
            if symbol_state.basis_changed:
                symbol_state.basis_changed = False
                out.alerts += self.alerts.evaluate(
                    symbol,
                    "symbol",
                    symbol_state.values,
                    int(symbol_state.values.get("basis_ms", 0)),
                )
                self._symbols_unwritten.add(symbol)
                self._symbol_written[symbol] = -math.inf  # a new basis goes out at once
        for symbol in list(self._symbols_unwritten):
            if now_ms - self._symbol_written.get(symbol, -math.inf) >= SYMBOL_WRITE_EVERY_MS:
                out.symbol_fields[symbol] = self.symbols[symbol].fields(now_ms)
                self._symbol_written[symbol] = now_ms
                self._symbols_unwritten.discard(symbol)
        out.alert_states = self.alerts.take_changes()
        if self._moved:
            out.positions = {
                stream: StreamPosition(p.last_id, p.processed, p.bad)
                for stream, p in self._moved.items()
            }
            out.counts = self.counts()
            self._moved = {}
        out.recv_ms, self._recv = self._recv, []
        return out

    def apply_funding(self, legs: Mapping[str, LegFunding | None], now_ms: int) -> None:
        """The symbols' latest funding (None: none known): every pair with both legs known
        recomputes its carry, written by the next :meth:`step`."""
        for pair, state in self.pairs.items():
            y, x = legs.get(state.y), legs.get(state.x)
            if y is not None and x is not None:
                state.on_funding(y, x, now_ms)
                self._touched_pairs.add(pair)

    def run_jobs(self, budget_s: float) -> int:
        """Deferred statistics for at most about ``budget_s``; their pairs are written by the
        next :meth:`step`. Returns how many jobs ran."""
        done = self.jobs.run(budget_s)
        for job in done:
            if job.pair in self.pairs:
                self._touched_pairs.add(job.pair)
        return len(done)

    @property
    def has_pending_writes(self) -> bool:
        return bool(self._touched_pairs)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Entries processed and bad entries skipped, per followed stream."""
        return {stream: (p.processed, p.bad) for stream, p in self.positions.items()}

    def take_bad_entries(self) -> list[BadEntry]:
        bad, self.bad_entries = self.bad_entries, []
        return bad
