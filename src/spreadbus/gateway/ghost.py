"""The "ghost" venue: a simulated second exchange that shadows every real trade.

For each real tick it makes a synthetic tick with the same id, side and quantity, a price moved
by Gaussian noise (``noise_bps``, one sigma) and, now and then, by a dislocation episode (a
persistent offset of about ``dislocation_bps`` for a few seconds, so arbitrage alerts have
something real to find). Each ghost tick gets a publication delay drawn from a log-normal
distribution with mean ``delay_ms`` and standard deviation ``jitter_ms``; the gateway publishes
it only once that delay has passed. Pure and seeded: no clock, no I/O.

A batch of ticks is shadowed at once (:meth:`GhostVenue.shadow_many`): the arithmetic runs on
numpy arrays, the ghost ticks are built and formatted in C loops (``map``), and the dislocation
episodes, which depend on the order of the ticks, are walked only at the rare ticks that could
start one. The result is the same, draw for draw, as shadowing the ticks one by one (a test
checks it against a one-by-one reference).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count, repeat
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from spreadbus.bus.codec import Tick

DISLOCATION_SECONDS = (2.0, 8.0)
DRAWS = 4096  # random numbers are drawn in numpy blocks: per-tick Python draws cost more

FloatArray = npt.NDArray[np.float64]
# positions in a Tick (a tuple)
_SYMBOL, _TRADE_ID, _PRICE = itemgetter(0), itemgetter(1), itemgetter(2)
_QTY, _SIDE = itemgetter(3), itemgetter(4)
_TRADE_MS, _RECV = itemgetter(5), itemgetter(7)


@dataclass(frozen=True, slots=True)
class GhostConfig:
    noise_bps: float = 1.5
    delay_ms: float = 40.0
    jitter_ms: float = 25.0
    dislocation_prob: float = 0.002
    dislocation_bps: float = 25.0


class GhostVenue:
    def __init__(self, config: GhostConfig, seed: int) -> None:
        self.config = config
        self.random = random.Random(seed)  # rare draws: dislocation episodes
        self._rng = np.random.default_rng(seed)
        self._pending: list[tuple[float, int, Tick]] = []  # (due recv ms, seq, tick) heap
        self._seq = count(1)
        self._episodes: dict[str, tuple[float, float]] = {}  # symbol -> (until ms, offset bps)
        # log-normal parameters giving the configured mean and standard deviation
        mean = max(config.delay_ms, 1e-6)
        sigma2 = math.log1p((config.jitter_ms / mean) ** 2)
        self._mu, self._sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
        empty = np.empty(0)
        self._noise, self._delays, self._coins = empty, empty, empty
        self._next = 0

    def __len__(self) -> int:
        """Ghost ticks scheduled and not yet handed out by :meth:`due`."""
        return len(self._pending)

    def next_due_ms(self) -> float | None:
        """When the earliest scheduled ghost tick is due (epoch ms), if any."""
        return self._pending[0][0] if self._pending else None

    def _refill(self) -> None:
        self._noise = self._rng.standard_normal(DRAWS) * self.config.noise_bps
        if self.config.delay_ms > 0:
            self._delays = self._rng.lognormal(self._mu, self._sigma, DRAWS)
        else:
            self._delays = np.zeros(DRAWS)
        self._coins = self._rng.random(DRAWS)
        self._next = 0

    def _draw(self, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The next ``n`` (noise, delay, coin) numbers, in the blocks' order."""
        parts: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        while n > 0:
            if self._next >= DRAWS or not len(self._noise):
                self._refill()
            take = min(n, DRAWS - self._next)
            window = slice(self._next, self._next + take)
            parts.append((self._noise[window], self._delays[window], self._coins[window]))
            self._next += take
            n -= take
        if len(parts) == 1:
            return parts[0]
        noise, delays, coins = zip(*parts, strict=True)
        return np.concatenate(noise), np.concatenate(delays), np.concatenate(coins)

    def _offsets_bps(
        self, symbols: Sequence[str], recv: FloatArray, coins: FloatArray
    ) -> FloatArray:
        """Each tick's dislocation offset, as the ticks in order would meet the episodes: a
        tick inside its symbol's episode takes its offset; outside one, a coin below the
        probability starts a new one at that tick. Only those rare ticks are visited one by
        one (in order, so the episode draws come in the same order as tick by tick); each
        new episode then applies, as one array operation, to its symbol's later ticks."""
        codes: dict[str, int] = {}
        code = np.fromiter(
            (codes.setdefault(symbol, len(codes)) for symbol in symbols), np.int64, len(symbols)
        )
        episodes = [self._episodes.get(symbol, (0.0, 0.0)) for symbol in codes]
        until = np.array([e[0] for e in episodes])
        offset = np.array([e[1] for e in episodes])
        out = np.where(recv < until[code], offset[code], 0.0)
        for i in np.flatnonzero(coins < self.config.dislocation_prob).tolist():
            c = code[i]
            if recv[i] < until[c]:
                continue  # inside an episode: no new one, and its offset is already applied
            seconds = self.random.uniform(*DISLOCATION_SECONDS)
            offset[c] = self.random.choice((-1.0, 1.0)) * self.config.dislocation_bps
            until[c] = recv[i] + seconds * 1000
            later = np.flatnonzero(code[i:] == c) + i
            out[later] = np.where(recv[later] < until[c], offset[c], 0.0)
        for symbol, c in codes.items():
            self._episodes[symbol] = (float(until[c]), float(offset[c]))
        return out

    def shadow_many(self, ticks: Sequence[Tick]) -> None:
        """Schedule the ghost twins of real ticks (any symbols, in arrival order)."""
        n = len(ticks)
        if not n:
            return
        symbols = list(map(_SYMBOL, ticks))
        noise, delays, coins = self._draw(n)
        texts = list(map(_PRICE, ticks))
        recv = np.fromiter(map(_RECV, ticks), np.float64, n)
        bps = noise + self._offsets_bps(symbols, recv, coins)
        prices = np.array(texts, dtype=np.float64) * (1.0 + bps / 1e4)
        dots = np.fromiter(map(str.find, texts, repeat(".")), np.int64, n)
        lengths = np.fromiter(map(len, texts), np.int64, n)
        decimals = np.where(dots < 0, 0, lengths - dots - 1)
        prices = np.maximum(prices, 10.0 ** -decimals.astype(np.float64))
        due = (recv + delays).tolist()
        ghost_ms = (np.fromiter(map(_TRADE_MS, ticks), np.int64, n)
                    + delays.astype(np.int64)).tolist()  # fmt: skip
        if (decimals == decimals[0]).all():
            price_text = list(map(f"%.{int(decimals[0])}f".__mod__, prices.tolist()))
        else:
            price_text = list(
                map("%.*f".__mod__, zip(decimals.tolist(), prices.tolist(), strict=True))
            )
        fields = zip(
            symbols, map(_TRADE_ID, ticks), price_text, map(_QTY, ticks), map(_SIDE, ticks),
            ghost_ms, ghost_ms, due, repeat("ghost", n), strict=True,
        )  # fmt: skip
        ghosts = map(tuple.__new__, repeat(Tick, n), fields)
        items = list(zip(due, self._seq, ghosts))  # noqa: B905 (count() is endless)
        if len(items) * 8 < len(self._pending):  # a few into a large heap: push each, O(k log n)
            for item in items:
                heapq.heappush(self._pending, item)
        else:  # many: one O(n) heapify beats k pushes
            self._pending.extend(items)
            heapq.heapify(self._pending)

    def due(self, now_ms: float) -> list[Tick]:
        """Ghost ticks whose delay has passed, in due order."""
        out: list[Tick] = []
        pending = self._pending
        while pending and pending[0][0] <= now_ms:
            out.append(heapq.heappop(pending)[2])
        return out
