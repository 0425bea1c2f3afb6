"""What every source (Binance, sim, replay) feeds: one sink, so all share one parse and publish
path. Sources push; the sink counts, dedupes, adds ghost ticks and batches writes to Redis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from spreadbus.bus.codec import Tick
from spreadbus.gateway.binance import Parsed


class TickSink(Protocol):
    def on_frame(self, frame: bytes | str, recv_ts: float, source: str) -> Parsed | None:
        """A raw exchange frame (Binance JSON), parsed and counted by the sink. Returns what it
        parsed (None if malformed), so a WebSocket client can act on control replies."""

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        """Ticks a source built itself (sim, CSV replay)."""

    def on_malformed(self, reason: str, detail: str) -> None:
        """A record the source itself could not read (e.g. a broken CSV line)."""

    async def wait_for_room(self) -> None:
        """Return once the write buffer has room: sources that can wait (sim, replay at full
        speed) call it between batches so memory stays bounded."""
