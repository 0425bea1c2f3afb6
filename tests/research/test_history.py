"""Live 1-second bars for research: the raw price series (last hour) joined with the archive's
real ticks for older seconds, against bars computed independently from the raw ticks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis.asyncio as aioredis

from spreadbus.archivist.convert import SCHEMAS
from spreadbus.archivist.layout import archive_root, date_of_ms, part_name, partition_dir
from spreadbus.archivist.writer import write_part_file
from spreadbus.bus import keys
from spreadbus.research import history

T0_MS = 1_795_000_000_000
MINUTE_MS = 60_000
Ticks = list[tuple[int, int, float]]  # (trade ms, trade id, price), in trade order


def _ticks(seed: int, start_price: float) -> Ticks:
    """40 minutes of trades at random milliseconds: quiet seconds, and several trades in
    one millisecond now and then (the series keeps the last)."""
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0, 1, 150, 700, 2500], size=6000, p=[0.05, 0.1, 0.45, 0.3, 0.1])
    stamps = T0_MS + np.cumsum(gaps)
    stamps = stamps[stamps < T0_MS + 40 * MINUTE_MS]
    prices = np.round(start_price * np.exp(np.cumsum(rng.normal(0, 3e-4, len(stamps)))), 2)
    return [
        (int(t), 1000 + i, float(p)) for i, (t, p) in enumerate(zip(stamps, prices, strict=True))
    ]


def _archive(data_dir: Path, symbol: str, ticks: Ticks) -> None:
    """The ticks as one archive part, with ghost copies at other prices that must not count."""
    rows = [(t, v, i, p + (7.0 if v == "ghost" else 0.0)) for t, i, p in ticks
            for v in ("binance", "ghost")]  # fmt: skip
    n = len(rows)
    table = pa.table(
        {
            "ts": [r[0] for r in rows], "venue": [r[1] for r in rows],
            "trade_id": [r[2] for r in rows], "price": [r[3] for r in rows],
            "qty": [1.0] * n, "side": ["buy"] * n, "event_ts": [r[0] for r in rows],
            "recv_ts": [r[0] * 1000 for r in rows], "price_text": [f"{r[3]:.2f}" for r in rows],
            "qty_text": ["1"] * n, "stream_id": [f"{r[0]}-{r[2]}" for r in rows],
        },
        schema=SCHEMAS["ticks"],
    )  # fmt: skip
    date = date_of_ms(ticks[0][0])
    path = partition_dir(archive_root(data_dir), "ticks", symbol, date) / part_name(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_part_file(path, "ticks", symbol, date, table)


async def _series(client: aioredis.Redis, symbol: str, ticks: Ticks) -> None:
    """The gateway's price series: last price per millisecond, one hour."""
    key = keys.price_series(symbol)
    create = ("TS.CREATE", key, "RETENTION", 3_600_000, "DUPLICATE_POLICY", "LAST")
    await client.execute_command(*create)  # type: ignore[no-untyped-call]
    for offset in range(0, len(ticks), 500):
        args: list[object] = []
        for t, _, p in ticks[offset : offset + 500]:
            args += [key, t, p]
        await client.execute_command("TS.MADD", *args)  # type: ignore[no-untyped-call]


def _expected(ticks: dict[str, Ticks], first_s: int, last_s: int) -> pd.DataFrame:
    """Independently: per second the price of the last trade, each symbol's quiet seconds
    carrying its last close, only seconds where every symbol has had a trade."""
    columns = {}
    for symbol, rows in ticks.items():
        frame = pd.DataFrame(rows, columns=["ms", "id", "price"])
        last = frame.groupby(frame["ms"] // 1000)["price"].last()
        columns[symbol] = last[(last.index >= first_s) & (last.index <= last_s)]
    table = pd.DataFrame(columns).sort_index().ffill().dropna()
    table.index = table.index * 1000
    return table


@pytest.mark.parametrize("seam_offset_ms", [20 * MINUTE_MS + 437, 20 * MINUTE_MS])
async def test_live_one_second_bars_join_series_and_archive_at_a_seam(
    aredis: aioredis.Redis, data_dir: Path, seam_offset_ms: int
) -> None:
    """The archive holds the first 25 minutes, the series everything from the seam on (a
    5-minute overlap; the seam in the middle of a second, or on one): every second comes
    from one source, none missing, none twice, equal to bars of the raw ticks."""
    ticks = {"AAAUSDT": _ticks(1, 100.0), "BBBUSDT": _ticks(2, 50.0)}
    seam_ms = T0_MS + seam_offset_ms
    for symbol, rows in ticks.items():
        _archive(data_dir, symbol, [r for r in rows if r[0] < T0_MS + 25 * MINUTE_MS])
        await _series(aredis, symbol, [r for r in rows if r[0] >= seam_ms])
    hours = 0.6  # 36 minutes: the window starts in the archive's part
    closes = await history.live_closes(
        aredis, archive_root(data_dir), ["BBBUSDT", "AAAUSDT"], hours, "1s"
    )
    end_s = max(rows[-1][0] for rows in ticks.values()) // 1000
    first_s = end_s - int(hours * 3600) + 1
    want = _expected(ticks, first_s, end_s)[["BBBUSDT", "AAAUSDT"]]
    assert list(closes.columns) == ["BBBUSDT", "AAAUSDT"]
    assert closes.index.is_unique
    assert closes.index[0] < seam_ms < closes.index[-1]  # both sources are in the answer
    assert closes.index.tolist() == want.index.tolist()
    assert np.array_equal(closes.to_numpy(), want.to_numpy())  # prices are cents: exact


async def test_live_one_second_bars_without_any_price_say_so(
    aredis: aioredis.Redis, data_dir: Path
) -> None:
    with pytest.raises(history.HistoryError, match="no live prices for ZZZUSDT"):
        await history.live_closes(aredis, archive_root(data_dir), ["ZZZUSDT"], 1.0, "1s")
