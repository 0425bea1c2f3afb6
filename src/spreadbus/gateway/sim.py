"""The built-in simulated market: cointegrated pairs with known parameters, bursty trades.

Model (prices, not log prices, so that an OLS of y's price on x's price recovers ``beta``):

* The configured pairs ``Y/X`` form a graph on symbols. Pairs are taken in order and kept as
  *tree pairs* while they join two symbols not yet connected (a spanning forest). A pair that
  closes a cycle cannot be given its own independent spread: its relation is implied by the tree
  and :meth:`SimMarket.truth` reports the implied ``beta``/``alpha`` with ``exact=False`` (and no
  half-life) unless the implied spread happens to be a single OU process (e.g. ``B/A`` after
  ``A/B``).
* In each connected component one *anchor* symbol (the X of the component's first tree pair)
  follows a geometric Brownian motion: log-volatility ``anchor_vol`` per square-root second
  (``burst_vol_mult`` times that during bursts), zero drift of the price.
* Every tree pair ``Y/X`` holds exactly ``Y = alpha + beta * X + s`` where ``s`` is an
  Ornstein-Uhlenbeck process with half-life ``half_life_s`` and stationary standard deviation
  ``spread_sigma`` (price units of Y), started from its stationary law. Walking the tree from the
  anchor, a new symbol is derived from a known one, as Y from X or, reversed, as
  ``X = (Y - alpha - s) / beta``; either way the relation holds exactly, so symbols shared by
  several pairs stay consistent.
* Per tree pair, from the seed and the pair's name: ``half_life_s`` log-uniform in
  ``SimConfig.half_life_s``, ``alpha = w * Y0`` with ``w`` uniform in ``SimConfig.alpha_frac``,
  ``beta = (1 - w) * Y0 / X0`` (``Y0``, ``X0`` the symbols' reference levels) and
  ``spread_sigma = max(spread_bps * Y0, min_spread_ticks * tick(Y))``.
* Latent prices live on a 1 ms grid of the simulation clock. Trades come from a two-state
  (quiet / burst) Markov-modulated Poisson process shared by all symbols (market-wide bursts):
  taker orders arrive at ``rate * (burst_rate_mult if burst)``; each order fills 1 + geometric
  many makers in the same millisecond, walking the book one tick per fill (buys at or above
  the fair price rounded up to the tick, sells at or below it rounded down), random side,
  log-normal notional rounded to the symbol's quantity step. Trade ids are consecutive per
  symbol (like Binance aggregate ids), ``event_ts = trade_ts + 1..~10 ms``. Fair prices are
  floored at one tick, the only place the linear relations could bend (an anchor would have
  to lose most of its value first).

What the 1 s bars of an engine see is not the latent relation exactly: the last trade of each
symbol in a second is a little stale and sits on the bid or the ask. That noise is realistic
and biases a naive AR(1) half-life downward when the spread is narrow against it (see
``tests/gateway/test_sim.py`` for parameters under which beta and the half-life are recovered
within 5 % and 20 %).

The clock is internal: the market is generated in fixed chunks of ``chunk_ms`` aligned to
``start_ms`` and :meth:`SimMarket.advance` only hands out what is due, so a given
``(pairs, seed, start_ms, config)`` yields the same ticks however the caller slices time.

A restarted sim continues where the bus left off, as a real venue would: given each symbol's
last published ``(trade time, trade id)`` (``resume_after``), its trade ids go on from the next
id and its clock starts after the latest of those trade times. Without that, a restart reissued
the same ids for different trades (the stream took them as duplicates, the archive kept both).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.config import parse_pair
from spreadbus.gateway.binance import mark_price_frame
from spreadbus.gateway.simfunding import sim_marks
from spreadbus.gateway.sink import TickSink

SOURCE: Final = "sim"
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]


# ---- symbols ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Increment:
    """A decimal increment ``units * 10**-decimals`` (a tick size or a quantity step)."""

    units: int
    decimals: int

    @property
    def value(self) -> float:
        return float(self.units / 10**self.decimals)

    @classmethod
    def parse(cls, text: str) -> Increment:
        whole, _, frac = text.partition(".")
        frac = frac.rstrip("0")
        return cls(int(whole + frac), len(frac))

    @classmethod
    def power_of_ten(cls, exponent: int) -> Increment:
        return cls(10**exponent, 0) if exponent >= 0 else cls(1, -exponent)

    def text(self, count: int) -> str:
        """Exact decimal text of ``count`` increments: no float noise."""
        units = count * self.units
        if self.decimals == 0:
            return str(units)
        scale = 10**self.decimals
        return f"{units // scale}.{units % scale:0{self.decimals}d}"


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    level: float  # reference price
    tick: Increment  # price tick size
    step: Increment  # quantity step size
    rate: float  # taker orders per second when quiet
    notional: float  # median notional per fill (USDT)


# symbol: (level, tick, step, quiet orders/s, median notional)
KNOWN_SYMBOLS: Final[dict[str, tuple[float, str, str, float, float]]] = {
    "BTCUSDT": (98000.0, "0.1", "0.001", 50.0, 3000.0),
    "ETHUSDT": (3500.0, "0.01", "0.001", 40.0, 2000.0),
    "SOLUSDT": (180.0, "0.01", "1", 20.0, 1000.0),
    "BNBUSDT": (650.0, "0.01", "0.01", 10.0, 800.0),
    "XRPUSDT": (2.3, "0.0001", "0.1", 15.0, 800.0),
    "DOGEUSDT": (0.35, "0.00001", "1", 15.0, 600.0),
}


def _unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from a name (never Python's salted ``hash``)."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def symbol_spec(symbol: str) -> SymbolSpec:
    """Level, tick and step of a symbol: the known majors, or a deterministic made-up market
    (level from a hash of the name between ~0.03 and ~3000, tick ~1e-4 of the level and a step
    worth ~$10-100, both powers of ten)."""
    known = KNOWN_SYMBOLS.get(symbol)
    if known is not None:
        level, tick_text, step_text, rate, notional = known
        return SymbolSpec(
            symbol, level, Increment.parse(tick_text), Increment.parse(step_text), rate, notional
        )
    level = float(f"{10 ** (-1.5 + 5.0 * _unit_hash(symbol)):.4g}")
    tick = Increment.power_of_ten(round(math.log10(level * 1e-4)))
    step = Increment.power_of_ten(min(3, max(-3, round(math.log10(30.0 / level)))))
    return SymbolSpec(symbol, level, tick, step, 5.0, 500.0)


# ---- configuration and ground truth -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of the simulated market (defaults give a lively but realistic dashboard)."""

    chunk_ms: int = 10_000  # generation granularity (part of the reproducibility key)
    anchor_vol: float = 1.5e-4  # log-volatility of anchors per sqrt(second) (~84 %/year)
    burst_vol_mult: float = 3.0  # anchor volatility multiplier during bursts
    spread_bps: float = 2.0  # stationary spread sigma as bps of Y's level ...
    min_spread_ticks: float = 10.0  # ... but at least this many of Y's ticks
    half_life_s: tuple[float, float] = (5.0, 30.0)  # log-uniform range of OU half-lives
    alpha_frac: tuple[float, float] = (-0.1, 0.1)  # alpha as a fraction of Y's level
    rate_scale: float = 1.0  # multiplies every symbol's quiet order rate
    burst_rate_mult: float = 60.0  # order rate multiplier during bursts
    mean_quiet_s: float = 30.0  # mean duration of a quiet period
    mean_burst_s: float = 0.6  # mean duration of a burst
    fill_p_quiet: float = 0.7  # fills per order ~ geometric(p): mean 1/p
    fill_p_burst: float = 0.45
    notional_sigma: float = 1.2  # log-normal sigma of fill notionals
    event_delay_ms: float = 2.0  # event_ts - trade_ts = 1 + Poisson(this)
    overrides: Mapping[str, PairOverride] = field(default_factory=dict)  # by pair "Y/X"


@dataclass(frozen=True, slots=True)
class PairOverride:
    """Fixed parameters for one pair instead of the seeded draws (None keeps the draw)."""

    half_life_s: float | None = None
    spread_sigma: float | None = None  # stationary spread sigma, price units of Y


@dataclass(frozen=True, slots=True)
class PairTruth:
    """What the simulation guarantees for a pair: ``Y = alpha + beta * X + spread``.

    ``spread`` has stationary standard deviation ``spread_sigma`` (price units of Y). When
    ``exact`` it is an OU process with half-life ``half_life_s``; otherwise (a pair closing a
    cycle of the pair graph) it is a mix of several OU processes and ``half_life_s`` is None.
    """

    beta: float
    alpha: float
    half_life_s: float | None
    spread_sigma: float
    exact: bool
    tree: bool  # the pair has its own spread process (not implied by other pairs)


@dataclass(slots=True)
class _Affine:
    """A symbol's price as ``const + anchor_coef * anchor(comp) + sum(g[j] * spread_j)``."""

    comp: int
    const: float
    anchor_coef: float
    g: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _TreePair:
    pair: str
    y: str
    x: str
    beta: float
    alpha: float
    half_life_s: float
    sigma: float


def _seed_int(seed: int) -> int:
    return seed % 2**64


# ---- fast Tick construction -------------------------------------------------------------------
def build_ticks(columns: Sequence[Sequence[Any]], recv_ts: float, source: str) -> list[Tick]:
    """Many :class:`Tick` objects from seven columns (symbol, trade id, price text, qty text,
    side, trade ts, event ts) sharing one ``recv_ts`` and ``source``: ``Tick`` is a tuple, so
    each is made in C (``tuple.__new__``) from a zip of the columns."""
    count = len(columns[0])
    rows = zip(*columns, repeat(recv_ts, count), repeat(source, count), strict=True)
    return list(map(tuple.__new__, repeat(Tick), rows))


# ---- the market -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Chunk:
    """Generated trades, merged over symbols and sorted by trade time."""

    symbol: ObjArray
    trade_id: IntArray
    price: ObjArray
    qty: ObjArray
    side: ObjArray
    trade_ts: IntArray
    event_ts: IntArray
    offset: int = 0


_SIDES: Final = np.array(["sell", "buy"], dtype=object)


class SimMarket:
    """Seeded simulated market of the symbols named by ``pairs`` (``"Y/X"`` strings)."""

    def __init__(
        self,
        pairs: Sequence[str],
        *,
        seed: int = 7,
        start_ms: int | None = None,
        config: SimConfig | None = None,
        resume_after: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("the simulated market needs at least one pair")
        self.config = config or SimConfig()
        if self.config.chunk_ms < 1:
            raise ValueError("chunk_ms must be at least 1")
        self.seed = seed
        self.start_ms = int(epoch_ms()) if start_ms is None else int(start_ms)
        self.resume_after = dict(resume_after or {})
        if self.resume_after:  # trade times only grow, as they do at a venue
            self.start_ms = max(self.start_ms, max(ms for ms, _ in self.resume_after.values()) + 1)
        parsed: list[tuple[str, str, str]] = []
        for text in pairs:
            y, x = parse_pair(text)
            name = f"{y}/{x}"
            if name not in (p[0] for p in parsed):
                parsed.append((name, y, x))
        self.pairs: tuple[str, ...] = tuple(p[0] for p in parsed)
        seen: dict[str, None] = {}
        for _, y, x in parsed:
            seen.setdefault(y)
            seen.setdefault(x)
        self.symbols: tuple[str, ...] = tuple(seen)
        self.specs: dict[str, SymbolSpec] = {s: symbol_spec(s) for s in self.symbols}
        self._build_model(parsed)
        self._rng = np.random.default_rng([_seed_int(seed), 0x51D])
        self._init_state()

    # ---- model -------------------------------------------------------------------------------
    def _pair_params(self, name: str, y: str, x: str) -> _TreePair:
        cfg = self.config
        rng = np.random.default_rng([_seed_int(self.seed), zlib.crc32(name.encode())])
        lo, hi = cfg.half_life_s
        half_life = float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else lo
        w = float(rng.uniform(*cfg.alpha_frac)) if cfg.alpha_frac[1] > cfg.alpha_frac[0] else 0.0
        y0, x0 = self.specs[y].level, self.specs[x].level
        sigma = max(cfg.spread_bps * 1e-4 * y0, cfg.min_spread_ticks * self.specs[y].tick.value)
        override = cfg.overrides.get(name)
        if override is not None:
            half_life = override.half_life_s or half_life
            sigma = override.spread_sigma or sigma
        if not (half_life > 0 and sigma > 0):
            raise ValueError(f"pair {name}: half-life and spread sigma must be positive")
        return _TreePair(name, y, x, (1.0 - w) * y0 / x0, w * y0, half_life, sigma)

    def _build_model(self, parsed: list[tuple[str, str, str]]) -> None:
        parent = {s: s for s in self.symbols}

        def find(s: str) -> str:
            while parent[s] != s:
                parent[s] = parent[parent[s]]
                s = parent[s]
            return s

        tree: list[_TreePair] = []
        self.cycle_pairs: tuple[str, ...] = ()
        cycles: list[str] = []
        for name, y, x in parsed:
            ry, rx = find(y), find(x)
            if ry == rx:
                cycles.append(name)
                continue
            parent[ry] = rx
            tree.append(self._pair_params(name, y, x))
        self.cycle_pairs = tuple(cycles)
        self._tree = tree
        # Walk each component from its anchor (the X of its first tree pair).
        affine: dict[str, _Affine] = {}
        anchors: list[str] = []
        for first in tree:
            if first.x in affine:
                continue
            comp = len(anchors)
            anchors.append(first.x)
            affine[first.x] = _Affine(comp, 0.0, 1.0)
            changed = True
            while changed:
                changed = False
                for j, tp in enumerate(tree):
                    if tp.x in affine and tp.y not in affine:
                        ax = affine[tp.x]
                        g = {k: tp.beta * v for k, v in ax.g.items()}
                        g[j] = 1.0
                        affine[tp.y] = _Affine(
                            ax.comp, tp.alpha + tp.beta * ax.const, tp.beta * ax.anchor_coef, g
                        )
                        changed = True
                    elif tp.y in affine and tp.x not in affine:
                        ay = affine[tp.y]
                        g = {k: v / tp.beta for k, v in ay.g.items()}
                        g[j] = g.get(j, 0.0) - 1.0 / tp.beta
                        affine[tp.x] = _Affine(
                            ay.comp, (ay.const - tp.alpha) / tp.beta, ay.anchor_coef / tp.beta, g
                        )
                        changed = True
        self._anchors = anchors
        self._affine = affine
        truth: dict[str, PairTruth] = {}
        for tp in tree:
            truth[tp.pair] = PairTruth(tp.beta, tp.alpha, tp.half_life_s, tp.sigma, True, True)
        for name, y, x in parsed:
            if name in truth:
                continue
            ay, ax = affine[y], affine[x]
            beta = ay.anchor_coef / ax.anchor_coef
            alpha = ay.const - beta * ax.const
            coefs = {k: ay.g.get(k, 0.0) - beta * ax.g.get(k, 0.0) for k in set(ay.g) | set(ax.g)}
            scale = max((abs(c) for c in coefs.values()), default=0.0)
            terms = [k for k, c in coefs.items() if abs(c) > 1e-9 * max(scale, 1e-300)]
            sigma = math.sqrt(sum((coefs[k] * tree[k].sigma) ** 2 for k in terms))
            single = len(terms) == 1
            truth[name] = PairTruth(
                beta, alpha, tree[terms[0]].half_life_s if single else None, sigma, single, False
            )
        self._truth = {name: truth[name] for name, _, _ in parsed}

    def truth(self) -> dict[str, PairTruth]:
        """The known hedge ratio, intercept, half-life and spread sigma of every pair."""
        return dict(self._truth)

    # ---- state -------------------------------------------------------------------------------
    def _init_state(self) -> None:
        cfg = self.config
        rng = self._rng
        self._log_anchor = np.array([math.log(self.specs[a].level) for a in self._anchors])
        dt = 1e-3
        self._phi = np.array([math.exp(-math.log(2) / tp.half_life_s * dt) for tp in self._tree])
        self._sigma = np.array([tp.sigma for tp in self._tree])
        self._innov = self._sigma * np.sqrt(1.0 - self._phi**2)
        self._spread = rng.standard_normal(len(self._tree)) * self._sigma
        self._burst = False
        self._next_switch = self.start_ms + rng.exponential(cfg.mean_quiet_s * 1000.0)
        self._next_chunk = self.start_ms
        self._next_id = {s: 1_000_000_000 + zlib.crc32(s.encode()) % 10**9 for s in self.symbols}
        for symbol, (_, last_id) in self.resume_after.items():
            if symbol in self._next_id:
                self._next_id[symbol] = last_id + 1
        self._pending: list[_Chunk] = []
        self._clock = self.start_ms - 1
        self._chunk_names = np.array(self.symbols, dtype=object)
        self._price_text = {s: TextCache(self.specs[s].tick) for s in self.symbols}
        self._qty_text = {s: TextCache(self.specs[s].step) for s in self.symbols}
        self.generated = 0

    @property
    def now_ms(self) -> int:
        """The simulation clock: everything with ``trade_ts <= now_ms`` has been handed out."""
        return self._clock

    # ---- generation ----------------------------------------------------------------------------
    def _regime(self, c0: int, c1: int) -> list[tuple[float, float, bool]]:
        """Quiet/burst segments covering [c0, c1) (consumes switch times in order)."""
        cfg = self.config
        segments: list[tuple[float, float, bool]] = []
        t = float(c0)
        while self._next_switch < c1:
            if self._next_switch > t:
                segments.append((t, self._next_switch, self._burst))
                t = self._next_switch
            self._burst = not self._burst
            mean = cfg.mean_burst_s if self._burst else cfg.mean_quiet_s
            self._next_switch += self._rng.exponential(mean * 1000.0)
        segments.append((t, float(c1), self._burst))
        return segments

    def _generate_chunk(self) -> None:
        cfg, rng = self.config, self._rng
        c0 = self._next_chunk
        n = cfg.chunk_ms
        c1 = c0 + n
        self._next_chunk = c1
        segments = self._regime(c0, c1)
        # latent log anchors (GBM) and spreads (OU) on the 1 ms grid
        vol = np.full(n, cfg.anchor_vol * math.sqrt(1e-3))
        for a, b, burst in segments:
            if burst:
                vol[max(0, math.ceil(a) - c0) : max(0, math.ceil(b) - c0)] *= cfg.burst_vol_mult
        drift = -0.5 * vol * vol
        log_anchors = np.empty((len(self._anchors), n))
        for k in range(len(self._anchors)):
            path = np.cumsum(vol * rng.standard_normal(n) + drift)
            path += self._log_anchor[k]
            self._log_anchor[k] = path[-1]
            log_anchors[k] = path
        # imported here: scipy.signal costs ~1 s to import, and the web imports this module
        # (research.datasets -> gateway.replay) without ever simulating
        from scipy.signal import lfilter  # noqa: PLC0415

        spreads = np.empty((len(self._tree), n))
        for j in range(len(self._tree)):
            eps = self._innov[j] * rng.standard_normal(n)
            out, _ = lfilter([1.0], [1.0, -self._phi[j]], eps, zi=[self._phi[j] * self._spread[j]])
            spreads[j] = out
            self._spread[j] = out[-1]
        # trades per symbol
        parts: list[tuple[int, IntArray, ObjArray, ObjArray, npt.NDArray[np.bool_], IntArray]] = []
        for idx, symbol in enumerate(self.symbols):
            spec = self.specs[symbol]
            times: list[FloatArray] = []
            in_burst: list[npt.NDArray[np.bool_]] = []
            for a, b, burst in segments:
                rate = spec.rate * cfg.rate_scale * (cfg.burst_rate_mult if burst else 1.0)
                count = int(rng.poisson(rate * (b - a) / 1000.0))
                times.append(np.sort(rng.uniform(a, b, count)))
                in_burst.append(np.full(count, burst))
            order_t = np.floor(np.concatenate(times)).astype(np.int64)
            order_t = np.clip(order_t, c0, c1 - 1)
            orders = len(order_t)
            if orders == 0:
                continue
            burst_o = np.concatenate(in_burst)
            fills = rng.geometric(np.where(burst_o, cfg.fill_p_burst, cfg.fill_p_quiet))
            buy_o = rng.random(orders) < 0.5
            delay_o = 1 + rng.poisson(cfg.event_delay_ms, orders)
            total = int(fills.sum())
            order_idx = np.repeat(np.arange(orders), fills)
            starts = np.cumsum(fills) - fills
            within = np.arange(total) - np.repeat(starts, fills)
            buy = buy_o[order_idx]
            ts = order_t[order_idx]
            grid = ts - c0
            aff = self._affine[symbol]
            fair = aff.const + aff.anchor_coef * np.exp(log_anchors[aff.comp][grid])
            for j, coef in aff.g.items():
                fair += coef * spreads[j][grid]
            tick = spec.tick.value
            level = np.maximum(fair, tick) / tick
            base = np.where(buy, np.ceil(level - 1e-9), np.floor(level + 1e-9)).astype(np.int64)
            price_k = np.maximum(base + np.where(buy, within, -within), 1)
            notional = spec.notional * np.exp(cfg.notional_sigma * rng.standard_normal(total))
            qty_n = np.maximum(np.rint(notional / (price_k * tick * spec.step.value)), 1).astype(
                np.int64
            )
            parts.append(
                (
                    idx,
                    ts,
                    self._price_text[symbol](price_k),
                    self._qty_text[symbol](qty_n),
                    buy,
                    ts + delay_o[order_idx],
                )
            )
        if not parts:
            return
        sym_idx = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts])
        ids = np.concatenate(
            [
                self._next_id[self.symbols[p[0]]] + np.arange(len(p[1]), dtype=np.int64)
                for p in parts
            ]
        )
        for p in parts:
            self._next_id[self.symbols[p[0]]] += len(p[1])
        trade_ts = np.concatenate([p[1] for p in parts])
        order = np.argsort(trade_ts, kind="stable")
        self._pending.append(
            _Chunk(
                symbol=self._chunk_names[sym_idx[order]],
                trade_id=ids[order],
                price=np.concatenate([p[2] for p in parts])[order],
                qty=np.concatenate([p[3] for p in parts])[order],
                side=_SIDES[np.concatenate([p[4] for p in parts]).astype(np.int64)[order]],
                trade_ts=trade_ts[order],
                event_ts=np.concatenate([p[5] for p in parts])[order],
            )
        )
        self.generated += len(order)

    def advance(self, to_ms: int | float, recv_ts: float | None = None) -> list[Tick]:
        """Every trade with ``trade_ts <= to_ms`` not handed out yet, in trade-time order (all
        symbols merged), stamped with ``recv_ts`` (default: the wall clock now, epoch ms)."""
        to_ms = math.floor(to_ms)
        if to_ms <= self._clock:
            return []
        while self._next_chunk <= to_ms:
            self._generate_chunk()
        self._clock = to_ms
        recv = epoch_ms() if recv_ts is None else recv_ts
        columns: list[list[Any]] = [[], [], [], [], [], [], []]
        while self._pending:
            chunk = self._pending[0]
            end = int(np.searchsorted(chunk.trade_ts, to_ms, side="right"))
            if end > chunk.offset:
                sl = slice(chunk.offset, end)
                for column, array in zip(
                    columns,
                    (
                        chunk.symbol,
                        chunk.trade_id,
                        chunk.price,
                        chunk.qty,
                        chunk.side,
                        chunk.trade_ts,
                        chunk.event_ts,
                    ),
                    strict=True,
                ):
                    column.extend(array[sl].tolist())
            if end < len(chunk.trade_ts):
                chunk.offset = end
                break
            self._pending.pop(0)
        return build_ticks(columns, recv, SOURCE)

    def trade_arrays(self, to_ms: int | float) -> dict[str, tuple[IntArray, FloatArray]]:
        """The trades :meth:`advance` would hand out, per symbol as ``(trade ms, price)``
        arrays in trade-time order: offline analysis of long runs (benchmarks against
        :meth:`truth`) without building a :class:`Tick` per trade."""
        to_ms = math.floor(to_ms)
        if to_ms <= self._clock:
            return {}
        while self._next_chunk <= to_ms:
            self._generate_chunk()
        self._clock = to_ms
        taken: list[tuple[ObjArray, IntArray, ObjArray]] = []
        while self._pending:
            chunk = self._pending[0]
            end = int(np.searchsorted(chunk.trade_ts, to_ms, side="right"))
            sl = slice(chunk.offset, end)
            taken.append((chunk.symbol[sl], chunk.trade_ts[sl], chunk.price[sl]))
            if end < len(chunk.trade_ts):
                chunk.offset = end
                break
            self._pending.pop(0)
        if not taken:
            return {}
        symbols = np.concatenate([t[0] for t in taken])
        times = np.concatenate([t[1] for t in taken])
        prices = np.concatenate([t[2] for t in taken])
        out: dict[str, tuple[IntArray, FloatArray]] = {}
        for symbol in self.symbols:
            mine = symbols == symbol
            out[symbol] = (times[mine], prices[mine].astype(np.float64))
        return out

    def resume(self, last: Mapping[str, tuple[int, int]]) -> None:
        """Continue these symbols' trade ids after the bus's last trades: a gateway that takes
        over another's symbols (``spreadbus.gateway.shares``) issues no id twice."""
        for symbol, (_, last_id) in last.items():
            if symbol in self._next_id:
                self._next_id[symbol] = max(self._next_id[symbol], last_id + 1)

    def ticks(self, until_ms: int, recv_ts: float = 0.0) -> Iterable[list[Tick]]:
        """Batches of one chunk each up to ``until_ms`` (offline use: tests, benchmarks)."""
        while self._clock < until_ms:
            yield self.advance(min(until_ms, self._clock + self.config.chunk_ms), recv_ts)


class TextCache:
    """Exact decimal text of integer counts of one increment (prices in ticks, quantities in
    steps), each value formatted once: a dense window of ready-made strings indexed by count,
    so a chunk's texts come from one numpy gather (prices and sizes keep coming back)."""

    LIMIT: Final = 1 << 21  # widest window kept (entries); wider requests are formatted afresh

    def __init__(self, inc: Increment) -> None:
        self.inc = inc
        self.lo = 0
        self.texts: ObjArray = np.empty(0, dtype=object)
        self.known: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)

    def _cover(self, lo: int, hi: int) -> bool:
        size = self.texts.size
        if size and lo >= self.lo and hi < self.lo + size:
            return True
        if size and hi - lo < self.LIMIT // 2:
            lo, hi = min(lo, self.lo), max(hi, self.lo + size - 1)
        if hi - lo >= self.LIMIT // 2:
            if hi - lo >= self.LIMIT:
                return False
            self.texts, self.known, size = self.texts[:0], self.known[:0], 0  # start afresh
        margin = (hi - lo) // 4 + 64
        new_lo = max(0, lo - margin)
        new_size = hi + margin + 1 - new_lo
        texts = np.empty(new_size, dtype=object)
        known = np.zeros(new_size, dtype=bool)
        if size:
            at = self.lo - new_lo
            texts[at : at + size] = self.texts
            known[at : at + size] = self.known
        self.lo, self.texts, self.known = new_lo, texts, known
        return True

    def __call__(self, counts: IntArray) -> ObjArray:
        if counts.size == 0:
            return np.empty(0, dtype=object)
        lo, hi = int(counts.min()), int(counts.max())
        if not self._cover(lo, hi):
            uniq, inverse = np.unique(counts, return_inverse=True)
            fresh = np.array([self.inc.text(c) for c in uniq.tolist()], dtype=object)
            out: ObjArray = fresh[inverse.reshape(-1)]
            return out
        index = counts - self.lo
        missing = ~self.known[index]
        if missing.any():
            text = self.inc.text
            for i in np.unique(index[missing]).tolist():
                self.texts[i] = text(i + self.lo)
            self.known[index[missing]] = True
        result: ObjArray = self.texts[index]
        return result


# ---- driver -----------------------------------------------------------------------------------
async def run_sim(
    market: SimMarket,
    sink: TickSink,
    stop: asyncio.Event,
    *,
    speed: float = 1.0,
    interval_s: float = 0.02,
    batch_ms: int = 5000,
    until_ms: int | None = None,
) -> int:
    """Push the market's ticks into ``sink`` until ``stop`` is set (or the sim clock reaches
    ``until_ms``); returns how many ticks were pushed.

    ``speed`` > 0: every ``interval_s`` of wall time the sim clock moves by ``speed`` times the
    elapsed wall time and what is due is pushed in one batch (speed 1 = real time).
    ``speed`` 0: as fast as the sink takes them, ``batch_ms`` of sim time per batch.
    ``recv_ts`` is the wall clock (epoch ms) at push time. Once per second of sim time each
    symbol's markPrice update (:mod:`spreadbus.gateway.simfunding`, mark = last trade) goes to
    the sink as the Binance frame it would be, so the same parser reads it.
    """
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    pushed = 0
    wall0 = time.monotonic()
    sim0 = market.now_ms
    last_prices: dict[str, float] = {}
    mark_second = sim0 // 1000
    while not stop.is_set():
        if speed == 0:
            target = market.now_ms + batch_ms
        else:
            target = sim0 + int((time.monotonic() - wall0) * 1000.0 * speed)
        if until_ms is not None:
            target = min(target, until_ms)
        batch = market.advance(target, epoch_ms())
        if batch:
            sink.on_ticks(batch)
            pushed += len(batch)
            fresh: set[str] = set()
            for tick in reversed(batch):  # the last trade per symbol, without a pass over all
                if tick.symbol not in fresh:
                    fresh.add(tick.symbol)
                    last_prices[tick.symbol] = tick.price_f
                    if len(fresh) == len(market.symbols):
                        break
        if market.now_ms // 1000 > mark_second and last_prices:
            mark_second = market.now_ms // 1000
            recv = epoch_ms()
            for mark in sim_marks(market.seed, mark_second * 1000, last_prices):
                sink.on_frame(mark_price_frame(mark), recv, SOURCE)
        if until_ms is not None and market.now_ms >= until_ms:
            break
        await sink.wait_for_room()
        await asyncio.sleep(0 if speed == 0 else interval_s)
    return pushed
