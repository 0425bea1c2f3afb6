"""The gateway's funding figures, read back from ``state:feed:{SYMBOL}`` for the carry.

The engine does not subscribe to markPrice itself: the gateway owns the exchange connection
and writes each symbol's latest mark, index, funding rate, next funding time and funding
interval once a second (:mod:`spreadbus.gateway.funding`); the engine reads them on the same
cadence and turns them into per-pair carry (:func:`spreadbus.analytics.carry`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from spreadbus.analytics import AnalyticsInputError, LegFunding

FEED_FIELDS: Final = (
    "mark_price", "index_price", "funding_rate", "next_funding_ms", "funding_interval_ms",
)  # fmt: skip
FEED_EVERY_S: Final = 1.0  # the gateway writes state:feed once a second


def leg_funding(values: Mapping[bytes | str, bytes | str | None]) -> LegFunding | None:
    """A leg's funding from the feed hash's fields (HMGET answers or HGETALL), or None while
    the gateway has none (no markPrice yet, a source without funding) or they are unusable."""
    try:
        raw = [values.get(f) if f in values else values.get(f.encode()) for f in FEED_FIELDS]
        if any(v is None for v in raw):
            return None
        mark, index, rate, next_ms, interval_ms = (float(v) for v in raw)  # type: ignore[arg-type]
        if not all(math.isfinite(v) for v in (mark, index, rate, next_ms, interval_ms)):
            return None
        return LegFunding(mark, index, rate, int(next_ms), int(interval_ms))
    except (ValueError, AnalyticsInputError):
        return None
