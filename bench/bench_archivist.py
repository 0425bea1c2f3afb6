"""Archivist throughput: spool appends, spool -> Parquet batches, bytes per tick on disk.

Reference, measured in the same run on the same ticks: plain ``pyarrow.parquet.write_table``
(zstd) of the finished Arrow table. That is the floor of any Parquet writer; the Archivist also
decodes the spool, validates every tick, dedupes, partitions, fsyncs and commits a manifest.
Best of three rounds of each, since the machines are shared and noisy.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spreadbus.archivist.atomic import PARQUET_OPTIONS
from spreadbus.archivist.convert import ticks_from_records, warm_up
from spreadbus.archivist.layout import spool_dir
from spreadbus.archivist.spool import Spool, read_segments
from spreadbus.archivist.writer import ArchiveWriter
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields

TICKS = 100_000
APPEND_BATCH = 500  # entries per XREAD batch, i.e. per fsync
ROUNDS = 3

Entry = tuple[str, str, dict[str, str]]


def make_entries(n: int) -> list[Entry]:
    """Realistic ticks: two symbols, real and ghost venues, a trade every few ms."""
    entries: list[Entry] = []
    base = 1795305480000
    for i in range(n):
        symbol = "BTCUSDT" if i % 2 else "ETHUSDT"
        ghost = i % 4 >= 2
        ms = base + i * 3
        price = f"{98231.4 + (i % 977) * 0.1:.1f}"
        qty = f"{0.001 * (1 + i % 13):.3f}"
        tick = Tick(
            symbol,
            2871449921 + i,
            price,
            qty,
            "buy" if i % 3 else "sell",
            ms,
            ms + 4,
            ms + 6.731,
            "ghost" if ghost else "binance",
        )
        if ghost:
            entries.append(
                (keys.ghost_stream(symbol), f"{ms + 40}-{i}", to_fields(tick, ghost=True))
            )
        else:
            entries.append((keys.tick_stream(symbol), tick.stream_id, to_fields(tick)))
    return entries


def _best(values: list[float]) -> float:
    return min(values)


def run() -> list[dict[str, object]]:
    warm_up()
    entries = make_entries(TICKS)
    append_s: list[float] = []
    write_s: list[float] = []
    reference_s: list[float] = []
    archive_bytes = reference_bytes = 0
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory(prefix="bench-archivist-") as folder:
            root = Path(folder) / "archive"
            writer = ArchiveWriter(root)
            writer.recover()
            spool = Spool(spool_dir(root))
            spool.recover(0)
            started = time.perf_counter()
            for i in range(0, len(entries), APPEND_BATCH):
                spool.append(entries[i : i + APPEND_BATCH])
            append_s.append(time.perf_counter() - started)

            segments = spool.seal()
            started = time.perf_counter()
            result = writer.write_batch(spool, segments)
            write_s.append(time.perf_counter() - started)
            assert result.ticks == TICKS, result
            archive_bytes = result.bytes
            spool.close()

            # the reference: the same rows, already an Arrow table, one plain write_table
            spool2 = Spool(Path(folder) / "ref-spool")
            spool2.recover(0)
            spool2.append(entries)
            batch = ticks_from_records(read_segments(p for _, p in spool2.seal()), {})
            spool2.close()
            table = pa.concat_tables(list(batch.tables.values()))
            target = Path(folder) / "reference.parquet"
            started = time.perf_counter()
            pq.write_table(table, target, **PARQUET_OPTIONS)
            reference_s.append(time.perf_counter() - started)
            reference_bytes = target.stat().st_size

    append_rate = TICKS / _best(append_s)
    write_rate = TICKS / _best(write_s)
    reference_rate = TICKS / _best(reference_s)
    per_tick = archive_bytes / TICKS
    reference_per_tick = reference_bytes / TICKS
    return [
        {
            "case": f"{TICKS:,} ticks, {APPEND_BATCH}/fsync",
            "metric": "spool append rate",
            "value": append_rate,
            "unit": "ticks/s",
        },
        {
            "case": f"{TICKS:,} ticks, 4 partitions",
            "metric": "spool -> Parquet batch rate",
            "value": write_rate,
            "unit": "ticks/s",
            "reference": reference_rate,
            "ratio": write_rate / reference_rate,
        },
        {
            "case": f"{TICKS:,} ticks, zstd",
            "metric": "bytes per tick on disk",
            "value": per_tick,
            "unit": "B/tick",
            "reference": reference_per_tick,
            "ratio": per_tick / reference_per_tick,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
