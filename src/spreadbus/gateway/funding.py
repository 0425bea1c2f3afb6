"""Each symbol's latest mark price and funding, and its funding interval, as the feed sees it.

Binance does not say how often a perpetual funds (8 h by default, some symbols 4 h or 1 h):
the interval is read off the feed, as the step between two successive ``next funding time``
values (``shared/BINANCE.md``). Until a symbol's funding time has rolled once, the interval is
the configured default and ``funding_interval_source`` says so. Pure: no Redis, no clock.

Fields for ``state:feed:{SYMBOL}`` (units in the names): ``mark_price``, ``index_price``,
``funding_rate`` (fraction per interval, longs pay shorts when positive), ``next_funding_ms``,
``funding_interval_ms``, ``funding_interval_source`` (``observed`` | ``default``),
``mark_index_bps`` (mark over index, bps), ``mark_event_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from spreadbus.gateway.binance import MarkPrice

HOUR_MS: Final = 3_600_000
DEFAULT_INTERVAL_MS: Final = 8 * HOUR_MS


@dataclass(slots=True)
class FundingBook:
    """Latest :class:`MarkPrice` per symbol and the funding interval derived from them."""

    default_interval_ms: int = DEFAULT_INTERVAL_MS
    latest: dict[str, MarkPrice] = field(default_factory=dict)
    interval_ms: dict[str, int] = field(default_factory=dict)  # observed only

    def on_mark(self, mark: MarkPrice) -> None:
        previous = self.latest.get(mark.symbol)
        if previous is not None and previous.event_ms > mark.event_ms:
            return  # an older update arriving late (reconnect overlap): keep the newer one
        if previous is not None and mark.next_funding_ms > previous.next_funding_ms:
            self.interval_ms[mark.symbol] = mark.next_funding_ms - previous.next_funding_ms
        self.latest[mark.symbol] = mark

    def fields(self, symbol: str) -> dict[str, float | int | str]:
        mark = self.latest.get(symbol)
        if mark is None:
            return {}
        observed = self.interval_ms.get(symbol)
        return {
            "mark_price": mark.mark_price,
            "index_price": mark.index_price,
            "funding_rate": mark.funding_rate,
            "next_funding_ms": mark.next_funding_ms,
            "funding_interval_ms": observed or self.default_interval_ms,
            "funding_interval_source": "observed" if observed else "default",
            "mark_index_bps": (mark.mark_price / mark.index_price - 1.0) * 1e4,
            "mark_event_ms": mark.event_ms,
        }
