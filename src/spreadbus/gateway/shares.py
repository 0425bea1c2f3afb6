"""``spreadbus gateway --shard auto`` (and the gateways of ``spreadbus up --gateways N``): the
symbols split into ``settings.gateways`` shares held through ``lease:{gateway}:{shard}``
(:mod:`spreadbus.bus.lease`); a gateway ingests only the symbols of the shares it holds.

When a gateway dies, a survivor takes its lease and starts ingesting those symbols after the
bus's last trade of each (the ingest's duplicate check and, for the sim, its trade ids continue
from there), so no trade is written twice. A share handed over to a process that joins is
first dropped from the ingest, then what the ingest holds is written (:func:`written_through`),
and only then is the lease released.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from spreadbus.bus.connect import AsyncRedis, connect_sync
from spreadbus.bus.errors import REDIS_ERRORS
from spreadbus.bus.lease import ShareGroup, member_name, owner_id, share_of
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.gateway.ingest import Ingest

HANDOVER_WAIT_S: Final = 3.0  # at most, for the ingest to write what it holds


async def written_through(ingest: Ingest, timeout_s: float = HANDOVER_WAIT_S) -> None:
    """Until everything the ingest took before now is written: two more successful flushes
    (one under way completes, the next takes all that is older). Not a flush of its own: two
    writes in flight at once could land out of order."""
    target = ingest.counters["flushes"] + 2
    deadline = time.monotonic() + timeout_s
    while ingest.counters["flushes"] < target and time.monotonic() < deadline:  # noqa: ASYNC110 (the ingest has no event for a flush done)
        await asyncio.sleep(0.005)


class SymbolShares:
    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        self.settings = settings
        name = member_name("gateway", settings.instance)
        self.group = ShareGroup(client, "gateway", settings.gateways, owner=owner_id(name))
        self.log = log
        self._keeper: threading.Event | None = None

    def mine(self, symbols: Sequence[str]) -> list[str]:
        """The symbols of the shares held now."""
        return [s for s in symbols if share_of(s, self.group.shards) in self.group.held]

    async def start(self) -> None:
        """Take a first part before the gateway reads its symbols, and keep the leases alive
        from a thread from now on (:meth:`ShareGroup.keep_alive`): the gateway's start (the
        sim's first chunks) can hold its event loop up for seconds on a busy machine."""
        self._keeper = self.group.keep_alive(connect_sync(self.settings))
        with contextlib.suppress(*REDIS_ERRORS):
            await self.group.step()

    async def run(
        self, stop: asyncio.Event, changed: Callable[[], Awaitable[None]], ingest: Ingest
    ) -> None:
        """Renew, take and give up shares; ``changed`` re-reads the symbol set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.group.interval_s)
            if stop.is_set():
                break
            try:
                change = await self.group.step()
                if change.surplus:
                    self.group.held.difference_update(change.surplus)
                    await changed()
                    await written_through(ingest)
                    await self.group.release(change.surplus)
                if change.gained or change.lost or change.surplus:
                    self.log.info(
                        "shares changed", held=sorted(self.group.held), gained=change.gained,
                        lost=change.lost, handed_over=change.surplus,
                    )  # fmt: skip
                if change.gained or change.lost:
                    await changed()
            except REDIS_ERRORS as exc:  # leases expire meanwhile; the next step says so
                self.log.warning("lease step failed", error=repr(exc))

    async def close(self) -> None:
        """Leave the group: after the gateway wrote what its ingest held (a survivor resumes
        after the bus's last trades, so they must all be there), then stop the keeper."""
        with contextlib.suppress(*REDIS_ERRORS, TimeoutError):
            await asyncio.wait_for(self.group.leave(), 2.0)
        if self._keeper is not None:
            self._keeper.set()
