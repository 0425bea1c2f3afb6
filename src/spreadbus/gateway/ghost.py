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

from spreadbus.bus.codec import Tick

DISLOCATION_SECONDS = (2.0, 8.0)


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
        self.random = random.Random(seed)
        self.pending: list[tuple[float, int, Tick]] = []  # (due recv ms, seq, tick) heap
        self._seq = 0
        self._episodes: dict[str, tuple[float, float]] = {}  # symbol -> (until ms, offset bps)
        # log-normal parameters giving the configured mean and standard deviation
        mean = max(config.delay_ms, 1e-6)
        sigma2 = math.log1p((config.jitter_ms / mean) ** 2)
        self._mu, self._sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)

    def delay_ms(self) -> float:
        if self.config.delay_ms <= 0:
            return 0.0
        return self.random.lognormvariate(self._mu, self._sigma)

    def _offset_bps(self, symbol: str, now_ms: float) -> float:
        until, offset = self._episodes.get(symbol, (0.0, 0.0))
        if now_ms < until:
            return offset
        if self.random.random() < self.config.dislocation_prob:
            seconds = self.random.uniform(*DISLOCATION_SECONDS)
            offset = self.random.choice((-1.0, 1.0)) * self.config.dislocation_bps
            self._episodes[symbol] = (now_ms + seconds * 1000, offset)
            return offset
        return 0.0

    def shadow(self, tick: Tick) -> None:
        """Schedule the ghost twin of a real tick."""
        bps = self.random.gauss(0.0, self.config.noise_bps) + self._offset_bps(
            tick.symbol, tick.recv_ts
        )
        price = float(tick.price) * (1.0 + bps / 1e4)
        decimals = _decimals(tick.price)
        floor = 10.0**-decimals
        delay = self.delay_ms()
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
