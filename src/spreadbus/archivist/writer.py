"""Turning sealed spool segments and TimeSeries samples into committed Parquet batches.

One batch, in this order (each step durable before the next):

1. read the sealed segments; drop entries at or below the committed cursor and repeats;
2. write ``pending.json`` naming the files about to be written;
3. write each partition's ``part-<batch>.parquet`` atomically;
4. commit ``manifest.json`` (new batch number, cursors, last consumed segment);
5. remove ``pending.json`` and the consumed segments.

A crash before 4 leaves a pending batch that :meth:`ArchiveWriter.recover` undoes (its rows
are still in the spool and go into the next batch); a crash after 4 leaves segments the
manifest already covers, which recovery deletes. Either way every row is in the archive once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from spreadbus.archivist.atomic import fsync_dir, remove_temp_files, write_parquet_atomic
from spreadbus.archivist.convert import (
    CandleRow,
    Sample,
    analytics_tables,
    candle_tables,
    ticks_from_records,
)
from spreadbus.archivist.layout import Dataset, part_name, partition_dir, spool_dir
from spreadbus.archivist.manifest import (
    Manifest,
    Pending,
    analytics_key,
    clear_pending,
    load_manifest,
    load_pending,
    save_manifest,
    save_pending,
)
from spreadbus.archivist.spool import Spool, read_segments

# symbol -> closed candles to write, oldest first (new minutes and revised ones: a minute
# written twice is one row after compaction and for readers, the newest write winning)
CandleInput = Mapping[str, Sequence[CandleRow]]
AnalyticsInput = Mapping[str, Mapping[str, Sequence[Sample]]]  # pair -> metric -> samples


@dataclass(slots=True)
class BatchResult:
    batch: int = 0  # 0: nothing was written
    ticks: int = 0
    candles: int = 0
    analytics: int = 0
    rejected: int = 0
    duplicates: int = 0
    files: list[str] = field(default_factory=list)
    bytes: int = 0


@dataclass(slots=True)
class RecoveryReport:
    undone_files: int = 0
    temp_removed: int = 0


@dataclass(slots=True)
class _Part:
    dataset: Dataset
    key: str
    date: str
    table: pa.Table


def part_metadata(dataset: Dataset, key: str, date: str) -> dict[bytes, bytes]:
    """Key-value metadata naming a file's partition, for readers of a single file."""
    name = "pair" if dataset == "analytics" else "symbol"
    return {
        b"spreadbus.dataset": dataset.encode(),
        f"spreadbus.{name}".encode(): key.encode(),
        b"spreadbus.date": date.encode(),
    }


def write_part_file(path: Path, dataset: Dataset, key: str, date: str, table: pa.Table) -> int:
    """Write one part file atomically, with its partition in the metadata; returns its size."""
    return write_parquet_atomic(
        path, table.replace_schema_metadata(part_metadata(dataset, key, date))
    )


class ArchiveWriter:
    """Owns the archive's committed state (the manifest). Not thread-safe: one batch at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = spool_dir(root)
        self.manifest = Manifest()

    def recover(self) -> RecoveryReport:
        """Bring the archive to its last committed state: undo a batch that did not commit and
        sweep temporary files. Reads everything from disk, so it is also the way back after a
        failed batch within a running process."""
        report = RecoveryReport()
        self.manifest = load_manifest(self.state_dir)
        pending = load_pending(self.state_dir)
        if pending is not None:
            if pending.batch > self.manifest.batch:
                for rel in pending.files:
                    path = self.root / rel
                    if path.exists():
                        path.unlink()
                        fsync_dir(path.parent)
                        report.undone_files += 1
            clear_pending(self.state_dir)
        report.temp_removed = remove_temp_files(self.root)
        return report

    def write_batch(
        self,
        spool: Spool,
        segments: Sequence[tuple[int, Path]],
        candles: CandleInput | None = None,
        analytics: AnalyticsInput | None = None,
    ) -> BatchResult:
        try:
            return self._write_batch(spool, segments, candles or {}, analytics or {})
        except BaseException:
            # Put disk and memory back to the last commit (as a restart would), then report.
            self.recover()
            spool.discard(self.manifest.spool_seq)
            raise

    def _write_batch(
        self,
        spool: Spool,
        segments: Sequence[tuple[int, Path]],
        candles: CandleInput,
        analytics: AnalyticsInput,
    ) -> BatchResult:
        old = self.manifest
        result = BatchResult()
        ticks = ticks_from_records(read_segments(p for _, p in segments), old.streams)
        result.ticks, result.rejected, result.duplicates = (
            ticks.count,
            ticks.rejected,
            ticks.duplicates,
        )
        parts = [_Part("ticks", sym, date, t) for (sym, date), t in ticks.tables.items()]

        candle_cursors = dict(old.candles)
        for symbol, rows in candles.items():  # new minutes, and revisions of recent ones
            if not rows:
                continue
            candle_cursors[symbol] = max(rows[-1][0], old.candles.get(symbol, -1))
            result.candles += len(rows)
            parts += [_Part("candles", symbol, d, t) for d, t in candle_tables(rows).items()]

        analytics_cursors = dict(old.analytics)
        for pair, series in analytics.items():
            fresh_series: dict[str, list[Sample]] = {}
            for metric, samples in series.items():
                key = analytics_key(pair, metric)
                fresh = [s for s in samples if s[0] > old.analytics.get(key, -1)]
                if fresh:
                    fresh_series[metric] = fresh
                    analytics_cursors[key] = max(s[0] for s in fresh)
            tables = analytics_tables(fresh_series)
            result.analytics += sum(t.num_rows for t in tables.values())
            parts += [_Part("analytics", pair, d, t) for d, t in tables.items()]

        spool_seq = max((seq for seq, _ in segments), default=old.spool_seq)
        if not parts and spool_seq == old.spool_seq:
            return result  # nothing new at all

        batch = old.batch + 1
        name = part_name(batch)
        if parts:
            rels = [
                (partition_dir(self.root, p.dataset, p.key, p.date) / name)
                .relative_to(self.root)
                .as_posix()
                for p in parts
            ]
            save_pending(self.state_dir, Pending(batch, tuple(rels)))
            for part, rel in zip(parts, rels, strict=True):
                result.bytes += write_part_file(
                    self.root / rel, part.dataset, part.key, part.date, part.table
                )
                result.files.append(rel)
        streams = dict(old.streams)
        streams.update(ticks.cursors)
        ordinals = dict(old.ordinals)
        for stream, ordinal in ticks.ordinals.items():
            if ordinal is None:
                ordinals.pop(stream, None)
            else:
                ordinals[stream] = ordinal
        new = Manifest(
            batch=batch,
            spool_seq=max(spool_seq, old.spool_seq),
            streams=streams,
            candles=candle_cursors,
            analytics=analytics_cursors,
            ordinals=ordinals,
            ticks_total=old.ticks_total + ticks.count,
        )
        save_manifest(self.state_dir, new)
        self.manifest = new
        result.batch = batch
        if parts:
            clear_pending(self.state_dir)
        spool.discard(new.spool_seq)
        return result
