"""Compaction: fewer files, every row once, atomic for readers."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa

from spreadbus.archivist.compaction import compact_archive
from spreadbus.archivist.convert import CANDLE_SCHEMA
from spreadbus.archivist.layout import partition_dir, spool_dir
from spreadbus.archivist.reader import read_candles, read_ticks
from spreadbus.archivist.spool import Spool
from spreadbus.archivist.writer import ArchiveWriter, write_part_file
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields

MIDNIGHT = 1795305600000  # 2026-11-22 00:00 UTC


class Feed:
    """Writes tick batches straight through the writer (no Redis needed here)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writer = ArchiveWriter(root)
        self.writer.recover()
        self.spool = Spool(spool_dir(root))
        self.spool.recover(self.writer.manifest.spool_seq)
        self.n = 0

    def batch(self, size: int, step_ms: int = 1000) -> None:
        entries = []
        for _ in range(size):
            self.n += 1
            ms = MIDNIGHT - 30_000 + self.n * step_ms
            for symbol in ("BTCUSDT", "ETHUSDT"):
                tick = Tick(symbol, self.n, "1.5", "2", "buy", ms, ms, ms + 1.0, "sim")
                entries.append((keys.tick_stream(symbol), tick.stream_id, to_fields(tick)))
        self.spool.append(entries)
        self.writer.write_batch(self.spool, self.spool.seal())

    def close(self) -> None:
        self.spool.close()


def parts(root: Path) -> list[Path]:
    return sorted((root / "ticks").rglob("*.parquet"))


def test_compaction_reduces_files_and_keeps_every_row_once(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    feed = Feed(root)
    for _ in range(12):
        feed.batch(5)  # 60 s of ticks from 23:59:30: both dates, many small parts
    before = pd.read_parquet(root / "ticks")
    assert len(parts(root)) == 2 * 12 + 2  # one batch straddles midnight
    result = compact_archive(root, max_parts=4, today="2026-11-22")
    # 2026-11-21 is over: one file per symbol; today has more than 4 parts: one file too
    assert result.partitions == 4
    assert len(parts(root)) == 4
    after = pd.read_parquet(root / "ticks")
    assert len(after) == len(before) == 2 * 60
    assert not after.duplicated(["symbol", "venue", "stream_id"]).any()
    key = ["symbol", "stream_id"]
    assert sorted(map(tuple, after[key].astype(str).values)) == sorted(
        map(tuple, before[key].astype(str).values)
    )
    assert compact_archive(root, max_parts=4, today="2026-11-22").partitions == 0  # settled
    # later parts of a compacted day are merged into it again
    feed.batch(3)
    feed.batch(3)
    compact_archive(root, max_parts=1, today="2026-11-23")
    assert len(parts(root)) == 4
    assert len(read_ticks(root, "BTCUSDT")) == 66
    assert not list(root.rglob(".compact-*"))
    feed.close()


def test_candle_minute_written_twice_is_one_row(tmp_path: Path) -> None:
    root = tmp_path / "archive"

    def candle(ts: int, close: float) -> pa.Table:
        row = {"ts": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": close, "volume": 3.0}
        return pa.Table.from_pylist([row], schema=CANDLE_SCHEMA)

    folder = partition_dir(root, "candles", "BTCUSDT", "2026-11-22")
    write_part_file(
        folder / "part-0000000001.parquet",
        "candles",
        "BTCUSDT",
        "2026-11-22",
        candle(MIDNIGHT, 1.0),
    )
    write_part_file(
        folder / "part-0000000002.parquet",
        "candles",
        "BTCUSDT",
        "2026-11-22",
        candle(MIDNIGHT, 1.25),
    )
    assert list(read_candles(root, "BTCUSDT")["close"]) == [1.25]  # the reader dedupes too
    compact_archive(root, max_parts=1, today="2026-11-22")
    frame = pd.read_parquet(root / "candles")
    assert list(frame["close"]) == [1.25]  # the newer write wins, once
    assert [p.name for p in folder.iterdir()] == ["part-0000000002-c.parquet"]


def test_readers_never_fail_or_repeat_during_compaction(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    feed = Feed(root)
    feed.batch(20, step_ms=10)
    errors: list[BaseException] = []
    counts: list[int] = []
    done = threading.Event()

    def read_forever() -> None:
        while not done.is_set():
            try:
                frame = read_ticks(root, "BTCUSDT")
                assert not frame.duplicated("stream_id").any()
                counts.append(len(frame))
            except BaseException as exc:  # reported by the test
                errors.append(exc)
                return

    thread = threading.Thread(target=read_forever)
    thread.start()
    try:
        for _ in range(15):  # add a part, compact (more than 1 part), again and again
            feed.batch(4, step_ms=10)
            compact_archive(root, max_parts=1, today="2026-11-22")
    finally:
        done.set()
        thread.join()
    feed.close()
    assert not errors, errors[0]
    assert len(counts) > 3
    assert counts == sorted(counts)
    assert len(read_ticks(root, "BTCUSDT")) == 20 + 15 * 4
    assert len(parts(root)) == 2
