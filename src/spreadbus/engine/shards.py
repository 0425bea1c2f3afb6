"""``spreadbus engine --shard auto`` (and every engine of ``spreadbus up --engines M``): the
pairs split into ``settings.engines`` shares, each held through a lease
(:mod:`spreadbus.bus.lease`) and served by a :class:`~spreadbus.engine.service.QuantEngine` of
its own in this process.

A share's engine keeps its own cursor (:func:`keys.engine_share_cursor`), stored with the
analytics it produced exactly as a lone engine stores its cursor. So when a process dies, the
survivor that takes its lease starts the share's engine from the last batch the dead one
stored: no entry processed twice, none skipped, and the counts in the cursor say so.

The processes of a group agree on nothing but Redis: the number of shares (``engines``, the
same in each), ``share_of(pair)`` (crc32) and the leases. A process that joins (started by
hand on another machine) gets a fair part: the others give up their surplus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from spreadbus.bus.connect import AsyncRedis, connect_sync
from spreadbus.bus.health import HealthState, Verdict, worst
from spreadbus.bus.lease import ShareGroup, member_name, owner_id
from spreadbus.bus.service import REDIS_ERRORS, EventLog
from spreadbus.config import Settings
from spreadbus.engine.service import QuantEngine
from spreadbus.engine.writer import FencedError

STOP_S: Final = 10.0  # a share's engine finishes its batch within this on a stop


def service_name(settings: Settings) -> str:
    """The heartbeat name: ``engine``, or ``engine-<instance>`` for another process."""
    return member_name("engine", settings.instance)


@dataclass(slots=True)
class _Running:
    engine: QuantEngine
    stop: asyncio.Event
    task: asyncio.Task[None]


class _Health(HealthState):
    """The group's own task and each share engine's tasks, as one verdict."""

    def __init__(self, owner: ShardedEngine) -> None:
        super().__init__()
        self.owner = owner

    def verdict(self) -> Verdict:
        found = [super().verdict()]
        found += [r.engine.health_state.verdict() for r in self.owner.running.values()]
        return worst(found)


class ShardedEngine:
    name = "engine"

    def __init__(self, settings: Settings, client: AsyncRedis, log: EventLog) -> None:
        self.settings = settings
        self.client = client
        self.log = log
        self.name = service_name(settings)
        self.group = ShareGroup(client, "engine", settings.engines, owner=owner_id(self.name))
        self.running: dict[int, _Running] = {}
        self.counters: Counter[str] = Counter()
        self.health_state = _Health(self)

    async def run(self, stop: asyncio.Event) -> None:
        self.health_state.watch("shares", asyncio.current_task())  # type: ignore[arg-type]
        keeper = self.group.keep_alive(connect_sync(self.settings))
        try:
            while not stop.is_set():
                await self._step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.group.interval_s)
        finally:
            keeper.set()
            self.health_state.unwatch("shares")
            for shard in list(self.running):
                await self._stop(shard)
            with contextlib.suppress(*REDIS_ERRORS):
                await asyncio.wait_for(self.group.leave(), 2.0)

    async def _step(self) -> None:
        try:
            change = await self.group.step()
        except REDIS_ERRORS as exc:  # the share engines ride the outage out themselves
            self.counters["lease_errors"] += 1
            self.log.warning("lease step failed", error=repr(exc), exc_info=exc)
            return
        for shard in change.lost:  # expired or taken: another process serves it now
            self.counters["shares_lost"] += 1
            self.log.warning("share lost", shard=shard, shares=self.group.shards)
            await self._stop(shard)
        for shard in change.surplus:
            await self._stop(shard)
            await self.group.release([shard])
            self.log.info("share handed over", shard=shard, shares=self.group.shards)
        for shard in change.gained:
            self.counters["shares_gained"] += 1
            self.log.info("share taken", shard=shard, shares=self.group.shards)
            self._start(shard)
        for shard, running in list(self.running.items()):
            if not running.task.done():
                continue
            failure = None if running.task.cancelled() else running.task.exception()
            if isinstance(failure, FencedError):  # lost the lease while busy: let it go
                self.counters["shares_fenced"] += 1
                self.log.warning("share fenced off: another process holds it", shard=shard)
                self.group.held.discard(shard)
                await self._stop(shard)
            else:  # crashed: say why, and serve the share again
                self.counters["engine_restarts"] += 1
                self.log.error("share engine ended; restarting", shard=shard, error=repr(failure))
                await self._stop(shard)
                self._start(shard)

    def _start(self, shard: int) -> None:
        share = (shard, self.group.shards)
        engine = QuantEngine(self.settings, self.client, self.log, share, self.group.owner)
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop), name=f"engine-share-{shard}")
        self.running[shard] = _Running(engine, stop, task)

    async def _stop(self, shard: int) -> None:
        running = self.running.pop(shard, None)
        if running is None:
            return
        running.stop.set()
        await asyncio.wait({running.task}, timeout=STOP_S)
        if not running.task.done():
            running.task.cancel()
            await asyncio.wait({running.task}, timeout=1.0)
        if running.task.done() and not running.task.cancelled():
            failure = running.task.exception()  # retrieved: asyncio would print it otherwise
            if failure is not None and not isinstance(failure, FencedError):
                self.log.error("share engine ended", shard=shard, error=repr(failure))
        with contextlib.suppress(Exception):
            await running.engine.close()
        # its batches refused by the fence stay counted once the share engine is gone
        self.counters["batches_fenced"] += running.engine.writer.fenced

    def health(self) -> Mapping[str, Any]:
        totals: Counter[str] = Counter()
        for running in self.running.values():
            for name, value in running.engine.health().items():
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[name] += value
        totals.update(self.counters)
        return {
            **totals,
            "shares": ",".join(str(s) for s in sorted(self.running)),
            "shares_total": self.group.shards,
            "owner": self.group.owner,
        }

    async def close(self) -> None:
        for shard in list(self.running):
            await self._stop(shard)
