"""The bus on a real Redis Cluster: every multi-key call stays in one symbol's slot."""

import pytest

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.connect import connect, is_cluster
from spreadbus.bus.ticks import SymbolBatch, TickWriter, last_trades
from spreadbus.config import Settings

pytestmark = pytest.mark.slow
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]  # spread over the 3 shards


async def test_tick_writer_on_a_cluster_is_exact_and_idempotent(redis_cluster_url: str) -> None:
    client = connect(Settings(redis_url=redis_cluster_url))
    assert is_cluster(client)
    try:
        writer = TickWriter(client)
        await writer.prepare(SYMBOLS)
        ticks = {
            s: [Tick(s, i, f"{100 + i % 7}.5", "0.25", "buy", 1_795_314_900_000 + i // 3,
                     1_795_314_900_000 + i // 3, 1.0, "sim") for i in range(1, 301)]
            for s in SYMBOLS
        }  # fmt: skip
        first = await writer.write({s: SymbolBatch(t[:200], t[:10]) for s, t in ticks.items()})
        again = await writer.write({s: SymbolBatch(t, []) for s, t in ticks.items()})
        assert (first.added, first.ghosts) == (1000, 50)
        assert (again.added, again.duplicates) == (500, 1000)
        assert await last_trades(client, SYMBOLS) == {s: (1_795_314_900_100, 300) for s in SYMBOLS}
        for symbol in SYMBOLS:
            assert await client.xlen(keys.tick_stream(symbol)) == 300
            volume = await client.execute_command(
                "TS.RANGE", keys.candle_series(symbol, "volume"), "-", "+", "LATEST"
            )
            assert sum(float(v) for _, v in volume) == pytest.approx(300 * 0.25, rel=1e-12)
    finally:
        await client.aclose()
