"""Funding carry of a beta-neutral perpetual spread, and each leg's mark-to-index basis.

Position: long 1 unit of y, short ``beta`` units of x (the spread ``y - beta x``); the short
spread is its opposite. A perpetual's funding rate ``r`` is a fraction of the position's
notional paid at each funding time, by longs to shorts when ``r > 0``. So at a funding event
the long spread receives ``-r_y m_y + beta r_x m_x`` (``m`` the mark prices, ``r`` the rates
announced for that event), reported in bps of the gross notional ``m_y + |beta| m_x``.

Fields (units in the names; rates as fractions per funding interval in, bps/% out):

- ``funding_diff_bps``: ``(r_y - r_x) * 1e4``, each leg's rate for its own next event;
- ``funding_diff_ann_pct``: ``(r_y * N_y - r_x * N_x) * 100`` with ``N = year / interval``,
  the yearly difference when the legs fund on different intervals;
- ``carry_next_long_bps`` / ``carry_next_short_bps``: the long / short spread held through
  each leg's next funding event;
- ``carry_half_life_long_bps`` / ``carry_half_life_short_bps``: the same, counting only the
  legs whose next funding time falls within one half-life from now: the expected carry of a
  trade held for the spread's typical reversion time (zero when no funding event is that
  close, the usual case for a half-life of seconds against 8 h funding);
- ``mark_index_y_bps`` / ``mark_index_x_bps``: each leg's mark price over its index price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from spreadbus.analytics._validate import AnalyticsInputError

__all__ = ["CARRY_FIELDS", "LegFunding", "carry"]

YEAR_MS: Final = 365 * 24 * 3_600_000
CARRY_FIELDS: Final = (
    "funding_diff_bps", "funding_diff_ann_pct", "carry_next_long_bps", "carry_next_short_bps",
    "carry_half_life_long_bps", "carry_half_life_short_bps", "mark_index_y_bps",
    "mark_index_x_bps",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LegFunding:
    """One leg's markPrice figures: prices in quote currency, rate a fraction per interval."""

    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_ms: int
    interval_ms: int

    def __post_init__(self) -> None:
        if not (self.mark_price > 0 and self.index_price > 0 and self.interval_ms > 0):
            raise AnalyticsInputError(
                f"LegFunding: prices and interval must be > 0, got {self.mark_price!r}, "
                f"{self.index_price!r}, {self.interval_ms!r}"
            )
        if not math.isfinite(self.funding_rate):
            raise AnalyticsInputError(f"LegFunding: funding rate {self.funding_rate!r}")


def _next_event(leg: LegFunding, now_ms: int) -> int:
    """The leg's next funding time at or after ``now_ms`` (a stale update's ``T`` may have
    passed: the events then follow every interval)."""
    if leg.next_funding_ms >= now_ms:
        return leg.next_funding_ms
    missed = (now_ms - leg.next_funding_ms + leg.interval_ms - 1) // leg.interval_ms
    return leg.next_funding_ms + missed * leg.interval_ms


def carry(
    y: LegFunding, x: LegFunding, beta: float, half_life_s: float, now_ms: int
) -> dict[str, float]:
    """Every field of the module docstring; carry fields NaN without a finite ``beta``, the
    half-life ones also without a half-life (``inf`` counts every upcoming event)."""
    out = dict.fromkeys(CARRY_FIELDS, math.nan)
    out["funding_diff_bps"] = (y.funding_rate - x.funding_rate) * 1e4
    out["funding_diff_ann_pct"] = (
        y.funding_rate * YEAR_MS / y.interval_ms - x.funding_rate * YEAR_MS / x.interval_ms
    ) * 100.0
    out["mark_index_y_bps"] = (y.mark_price / y.index_price - 1.0) * 1e4
    out["mark_index_x_bps"] = (x.mark_price / x.index_price - 1.0) * 1e4
    if not math.isfinite(beta):
        return out
    gross = y.mark_price + abs(beta) * x.mark_price
    paid_y = -y.funding_rate * y.mark_price / gross * 1e4  # long 1 y
    paid_x = beta * x.funding_rate * x.mark_price / gross * 1e4  # short beta x
    out["carry_next_long_bps"] = paid_y + paid_x
    out["carry_next_short_bps"] = -(paid_y + paid_x)
    if math.isnan(half_life_s) or half_life_s < 0:
        return out
    horizon_ms = now_ms + half_life_s * 1000.0
    within = (paid_y if _next_event(y, now_ms) <= horizon_ms else 0.0) + (
        paid_x if _next_event(x, now_ms) <= horizon_ms else 0.0
    )
    out["carry_half_life_long_bps"] = within
    out["carry_half_life_short_bps"] = -within
    return out
