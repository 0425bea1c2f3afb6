"""Mark price, index price and funding for the simulated market and the local test server.

Deterministic functions of (seed, symbol, time), so a test can compute every value by hand:

- funding interval: 8 h for most symbols, 4 h or 1 h for some (from a hash of the name), the
  way Binance runs a few perpetuals on shorter intervals; funding times are the UTC multiples
  of the interval (00:00, 08:00, 16:00 for 8 h), so ``next_funding_ms`` steps by the interval
  and a client can derive it as BINANCE.md asks;
- funding rate: ``FUNDING_BASE + FUNDING_AMP * sin(2 pi t / FUNDING_PERIOD_MS + phase)``, a
  slow drift around Binance's usual 0.01% per interval;
- index price: the mark price (the symbol's last trade) over ``1 + premium``, with the
  premium ``PREMIUM_AMP_BPS * sin(2 pi t / PREMIUM_PERIOD_MS + phase)`` in bps.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Final

from spreadbus.gateway.binance import MarkPrice

HOUR_MS: Final = 3_600_000
FUNDING_BASE: Final = 1e-4  # 0.01% per interval
FUNDING_AMP: Final = 5e-5
FUNDING_PERIOD_MS: Final = 6 * HOUR_MS
PREMIUM_AMP_BPS: Final = 3.0
PREMIUM_PERIOD_MS: Final = 600_000


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def funding_interval_ms(symbol: str) -> int:
    """8 h for ~70% of symbols, 4 h for ~20%, 1 h for the rest (stable per name)."""
    u = _unit(f"interval:{symbol}")
    return 8 * HOUR_MS if u < 0.7 else 4 * HOUR_MS if u < 0.9 else HOUR_MS


def next_funding_ms(symbol: str, now_ms: int) -> int:
    """The first multiple of the symbol's interval (from the epoch, i.e. UTC) after ``now_ms``."""
    interval = funding_interval_ms(symbol)
    return (now_ms // interval + 1) * interval


def funding_rate(seed: int, symbol: str, now_ms: int) -> float:
    phase = 2 * math.pi * _unit(f"funding:{seed}:{symbol}")
    return FUNDING_BASE + FUNDING_AMP * math.sin(2 * math.pi * now_ms / FUNDING_PERIOD_MS + phase)


def premium_bps(seed: int, symbol: str, now_ms: int) -> float:
    phase = 2 * math.pi * _unit(f"premium:{seed}:{symbol}")
    return PREMIUM_AMP_BPS * math.sin(2 * math.pi * now_ms / PREMIUM_PERIOD_MS + phase)


def sim_mark(seed: int, symbol: str, now_ms: int, mark_price: float) -> MarkPrice:
    """The markPrice update of ``symbol`` at ``now_ms`` whose mark is ``mark_price``."""
    index = mark_price / (1.0 + premium_bps(seed, symbol, now_ms) * 1e-4)
    return MarkPrice(
        symbol=symbol,
        mark_price=mark_price,
        index_price=index,
        settle_price=index,
        funding_rate=funding_rate(seed, symbol, now_ms),
        next_funding_ms=next_funding_ms(symbol, now_ms),
        event_ms=now_ms,
        recv_ts=0.0,
    )


def sim_marks(seed: int, now_ms: int, prices: Mapping[str, float]) -> list[MarkPrice]:
    """One update per symbol with a price so far (the mark is its last trade price)."""
    return [sim_mark(seed, s, now_ms, p) for s, p in sorted(prices.items())]
