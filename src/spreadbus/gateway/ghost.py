"""The "ghost" venue: a simulated second exchange that shadows every real trade.

For each real tick it makes a synthetic tick with the same id, side and quantity, a price moved
by Gaussian noise (``noise_bps``, one sigma) and, now and then, by a dislocation episode (a
persistent offset of about ``dislocation_bps`` for a few seconds, so arbitrage alerts have
something real to find). Each ghost tick gets a publication delay drawn from a log-normal
distribution with mean ``delay_ms`` and standard deviation ``jitter_ms``; the gateway publishes
it only once that delay has passed. Pure and seeded: no clock, no I/O.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

import numpy as np

from spreadbus.bus.codec import Tick

DISLOCATION_SECONDS = (2.0, 8.0)
DRAWS = 4096  # random numbers are drawn in numpy blocks: per-tick Python draws cost more


@dataclass(frozen=True, slots=True)
class GhostConfig:
    noise_bps: float = 1.5
    delay_ms: float = 40.0
    jitter_ms: float = 25.0
    dislocation_prob: float = 0.002
    dislocation_bps: float = 25.0


def _decimals(text: str) -> int:
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


class GhostVenue:
    def __init__(self, config: GhostConfig, seed: int) -> None:
        self.config = config
        self.random = random.Random(seed)  # rare draws: dislocation episodes
        self._rng = np.random.default_rng(seed)
        self.pending: list[tuple[float, int, Tick]] = []  # (due recv ms, seq, tick) heap
        self._seq = 0
        self._episodes: dict[str, tuple[float, float]] = {}  # symbol -> (until ms, offset bps)
        # log-normal parameters giving the configured mean and standard deviation
        mean = max(config.delay_ms, 1e-6)
        sigma2 = math.log1p((config.jitter_ms / mean) ** 2)
        self._mu, self._sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
        self._noise: list[float] = []
        self._delays: list[float] = []
        self._coins: list[float] = []
        self._next = 0

    def _draw(self) -> int:
        """Index of the next set of pre-drawn (noise, delay, coin) numbers."""
        if self._next >= len(self._noise):
            self._noise = (self._rng.standard_normal(DRAWS) * self.config.noise_bps).tolist()
            if self.config.delay_ms > 0:
                self._delays = self._rng.lognormal(self._mu, self._sigma, DRAWS).tolist()
            else:
                self._delays = [0.0] * DRAWS
            self._coins = self._rng.random(DRAWS).tolist()
            self._next = 0
        index = self._next
        self._next += 1
        return index

    def delay_ms(self) -> float:
        return self._delays[self._draw()]

    def _offset_bps(self, symbol: str, now_ms: float, coin: float) -> float:
        until, offset = self._episodes.get(symbol, (0.0, 0.0))
        if now_ms < until:
            return offset
        if coin < self.config.dislocation_prob:
            seconds = self.random.uniform(*DISLOCATION_SECONDS)
            offset = self.random.choice((-1.0, 1.0)) * self.config.dislocation_bps
            self._episodes[symbol] = (now_ms + seconds * 1000, offset)
            return offset
        return 0.0

    def shadow(self, tick: Tick) -> None:
        """Schedule the ghost twin of a real tick."""
        i = self._draw()
        bps = self._noise[i] + self._offset_bps(tick.symbol, tick.recv_ts, self._coins[i])
        price = float(tick.price) * (1.0 + bps / 1e4)
        decimals = _decimals(tick.price)
        floor = 10.0**-decimals
        delay = self._delays[i]
        due = tick.recv_ts + delay
        ghost_ts = tick.trade_ts + int(delay)
        ghost = Tick(
            tick.symbol,
            tick.trade_id,
            f"{max(price, floor):.{decimals}f}",
            tick.qty,
            tick.side,
            ghost_ts,
            ghost_ts,
            due,
            "ghost",
        )
        self._seq += 1
        heapq.heappush(self.pending, (due, self._seq, ghost))

    def due(self, now_ms: float) -> list[Tick]:
        """Ghost ticks whose delay has passed, in due order."""
        out: list[Tick] = []
        pending = self.pending
        while pending and pending[0][0] <= now_ms:
            out.append(heapq.heappop(pending)[2])
        return out
