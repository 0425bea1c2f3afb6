"""The ghost venue, shadowing whole batches at once, against a one-tick-at-a-time reference."""

from __future__ import annotations

import heapq
import math
import random

import numpy as np
import pytest

from spreadbus.bus.codec import Tick
from spreadbus.gateway.ghost import DISLOCATION_SECONDS, DRAWS, GhostConfig, GhostVenue


def one_by_one(config: GhostConfig, seed: int, ticks: list[Tick]) -> list[Tick]:
    """The venue's documented rules applied tick by tick, in plain Python: the same seeded
    draws (numpy blocks of noise, delay, coin; episodes from ``random.Random``), no arrays."""
    rng, rand = np.random.default_rng(seed), random.Random(seed)
    mean = max(config.delay_ms, 1e-6)
    sigma2 = math.log1p((config.jitter_ms / mean) ** 2)
    mu, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
    draws: list[tuple[float, float, float]] = []
    episodes: dict[str, tuple[float, float]] = {}
    heap: list[tuple[float, int, Tick]] = []
    for seq, tick in enumerate(ticks):
        if not draws:
            noise = rng.standard_normal(DRAWS) * config.noise_bps
            delays = rng.lognormal(mu, sigma, DRAWS)
            coins = rng.random(DRAWS)
            draws = list(zip(noise, delays, coins, strict=True))[::-1]
        noise_bps, delay, coin = draws.pop()
        until, offset = episodes.get(tick.symbol, (0.0, 0.0))
        if tick.recv_ts >= until:
            if coin < config.dislocation_prob:
                seconds = rand.uniform(*DISLOCATION_SECONDS)
                offset = rand.choice((-1.0, 1.0)) * config.dislocation_bps
                episodes[tick.symbol] = (tick.recv_ts + seconds * 1000, offset)
            else:
                offset = 0.0
        decimals = len(tick.price.partition(".")[2])
        price = max(float(tick.price) * (1 + (noise_bps + offset) / 1e4), 10.0**-decimals)
        ghost_ms = tick.trade_ts + int(delay)
        ghost = Tick(tick.symbol, tick.trade_id, f"{price:.{decimals}f}", tick.qty, tick.side,
                     ghost_ms, ghost_ms, tick.recv_ts + delay, "ghost")  # fmt: skip
        heapq.heappush(heap, (ghost.recv_ts, seq, ghost))
    return [heapq.heappop(heap)[2] for _ in range(len(heap))]


def market(seed: int, count: int) -> list[Tick]:
    rng = random.Random(seed)
    now = 1795305600000.0
    out = []
    for i in range(count):
        now += rng.random() * 3
        symbol = rng.choice(["AUSDT", "BUSDT", "CUSDT"])
        price = {"AUSDT": f"{100 + rng.random():.2f}", "BUSDT": f"{1e-4 + rng.random() / 1e3:.7f}",
                 "CUSDT": str(rng.randint(1, 5))}[symbol]  # fmt: skip
        out.append(Tick(symbol, i, price, "0.5", "buy", int(now) - 3, int(now) - 1, now, "sim"))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_shadow_exactly_as_one_tick_at_a_time(seed: int) -> None:
    """Batches of random sizes over three symbols (mixed decimals, an integer price), with
    episodes frequent enough to overlap batch edges, cross a draw block: every ghost equal."""
    config = GhostConfig(dislocation_prob=0.05)
    ticks = market(seed, 9000)
    venue = GhostVenue(config, seed)
    rng = random.Random(seed)
    start = 0
    while start < len(ticks):
        size = rng.randint(1, 700)
        venue.shadow_many(ticks[start : start + size])
        start += size
    assert len(venue) == len(ticks)
    got = venue.due(math.inf)
    assert got == one_by_one(config, seed, ticks)
    assert len(venue) == 0 and venue.next_due_ms() is None
    assert sum(g.price != t.price for g, t in zip(sorted(got, key=lambda g: g.trade_id), ticks,
                                                  strict=True)) > len(ticks) // 2  # fmt: skip


def test_due_hands_out_in_due_order_only_what_is_due() -> None:
    venue = GhostVenue(GhostConfig(delay_ms=40.0, jitter_ms=25.0), seed=7)
    ticks = market(7, 500)
    venue.shadow_many(ticks)
    first = venue.next_due_ms()
    assert first is not None
    assert venue.due(first - 0.01) == []
    cut = ticks[250].recv_ts
    early = venue.due(cut)
    assert early and all(g.recv_ts <= cut for g in early)
    assert [g.recv_ts for g in early] == sorted(g.recv_ts for g in early)
    assert len(early) + len(venue) == len(ticks)
