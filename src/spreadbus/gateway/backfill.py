"""Back-fill of trade-id gaps from Binance REST ``GET /fapi/v1/aggTrades``.

While a gap is being filled the ingest holds that symbol's live ticks, so the stream stays in
trade-id order; whatever happens here (timeout, HTTP error, nonsense answer) the ingest gets a
``fill_gap`` call and releases them.
"""

from __future__ import annotations

import asyncio

import httpx

from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.bus.service import EventLog
from spreadbus.gateway.binance import FrameError, parse_rest_agg_trades
from spreadbus.gateway.ingest import Ingest

LIMIT = 1000  # Binance's maximum rows per request
MAX_REQUESTS = 5  # per gap: a gap wider than 5,000 trades is counted, not chased
TIMEOUT = 3.0


class Backfiller:
    def __init__(self, rest_url: str, ingest: Ingest, log: EventLog) -> None:
        self.client = httpx.AsyncClient(base_url=rest_url, timeout=TIMEOUT)
        self.ingest = ingest
        self.log = log
        self.tasks: set[asyncio.Task[None]] = set()

    def request(self, symbol: str, first: int, last: int) -> None:
        task = asyncio.create_task(self._fill(symbol, first, last))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _fill(self, symbol: str, first: int, last: int) -> None:
        ticks: list[Tick] = []
        try:
            next_id = first
            for _ in range(MAX_REQUESTS):
                if next_id > last:
                    break
                limit = min(LIMIT, last - next_id + 1)
                response = await self.client.get(
                    "/fapi/v1/aggTrades",
                    params={"symbol": symbol, "fromId": next_id, "limit": limit},
                )
                response.raise_for_status()
                page = [
                    t
                    for t in parse_rest_agg_trades(response.json(), symbol, epoch_ms())
                    if first <= t.trade_id <= last
                ]
                if not page:
                    break
                ticks.extend(page)
                next_id = page[-1].trade_id + 1
            self.log.info(
                "gap back-filled", symbol=symbol, missed=last - first + 1, filled=len(ticks)
            )
        except (httpx.HTTPError, FrameError, ValueError) as exc:
            self.ingest.counters["backfill_failed"] += 1
            self.log.warning("gap back-fill failed", symbol=symbol, error=str(exc) or repr(exc))
        finally:
            self.ingest.fill_gap(symbol, ticks)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()
