"""The acknowledged-write audit against a real Redis: what it records, and what it finds lost."""

import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.ticks import SymbolBatch, TickWriter
from spreadbus.gateway.ackaudit import AckAudit

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def ticks(symbol: str, first_id: int, n: int) -> list[Tick]:
    start = 1_795_314_900_000
    return [
        Tick(symbol, i, "100.5", "0.25", "buy", start + i, start + i, start + i + 0.5, "sim")
        for i in range(first_id, first_id + n)
    ]


async def test_every_acknowledged_tick_is_recorded_and_deleted_ones_are_found(
    aredis: aioredis.Redis,
) -> None:
    """200 batches a symbol, recorded as a few buckets: their counts add up to every tick
    written, from the first id to the last; entries deleted behind the gateway's back (as a
    failover before replication would lose them) are counted exactly, and only those."""
    writer = TickWriter(aredis)
    await writer.prepare(SYMBOLS)
    audit = AckAudit()
    for k in range(200):
        batches = {s: SymbolBatch(ticks(s, 1 + 7 * k, 7), []) for s in SYMBOLS}
        await writer.write(batches)
        audit.acked(batches)
    stream = keys.tick_stream("ETHUSDT")
    entries = await aredis.xrange(stream)
    doomed = [entry_id for entry_id, _ in entries[500:530]] + [entries[-1][0]]
    await aredis.xdel(stream, *doomed)
    taken = audit.take()
    for symbol in SYMBOLS:
        records = taken[symbol]
        assert sum(w.ticks for w in records) == 1400
        assert (records[0].first_id, records[-1].last_id) == (
            ticks(symbol, 1, 1)[0].stream_id,
            ticks(symbol, 1400, 1)[0].stream_id,
        )
        assert len(records) < 200  # batches that follow each other share a record
    assert await AckAudit.missing(aredis, taken) == {"ETHUSDT": 31}
    assert audit.take() == {}  # a tick is audited once
