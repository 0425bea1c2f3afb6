"""Compaction: merge a partition's small part files into one, atomically, without duplicates.

A partition (``<dataset>/<key>/date=D``) is compacted when its day is over (UTC) and it holds
more than one part, or at any time when it holds more than ``archive_compact_parts`` parts.
The merged file is written into a hidden staging folder next to the partition, and the two
folders are then swapped in one ``renameat2(RENAME_EXCHANGE)``: anyone listing the partition
sees either all the old parts or the one merged file, never both (no duplicates) and never
neither. A reader that listed the old parts just before the swap gets "file not found" and
lists again (:mod:`spreadbus.archivist.reader` does this itself). Leftover staging folders of a
crash are removed at start-up; whichever side of the swap the crash was on, the partition
folder holds a complete, duplicate-free set.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from spreadbus.archivist.atomic import exchange_dirs, fsync_dir
from spreadbus.archivist.convert import merge_parts
from spreadbus.archivist.layout import (
    DATASETS,
    STAGING_PREFIX,
    Dataset,
    decode_pair,
    is_hidden,
    part_batch,
    part_name,
    partition_date,
)
from spreadbus.archivist.writer import write_part_file


@dataclass(slots=True)
class CompactionResult:
    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0


def _visible_dirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(
            Path(e.path)
            for e in entries
            if e.is_dir(follow_symlinks=False) and not is_hidden(e.name)
        )


def partition_parts(partition: Path) -> list[Path]:
    """Part files of a partition, oldest batch first."""
    found: list[tuple[int, str, Path]] = []
    with os.scandir(partition) as entries:
        for entry in entries:
            batch = part_batch(entry.name)
            if batch is not None and entry.is_file(follow_symlinks=False):
                found.append((batch, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(found)]


def _partition_key(dataset: Dataset, key_dir: Path) -> str:
    value = key_dir.name.partition("=")[2]
    return decode_pair(value) if dataset == "analytics" else value


def compact_partition(dataset: Dataset, partition: Path, parts: list[Path]) -> int:
    """Replace ``parts`` of ``partition`` by one merged file; returns the merged row count."""
    date = partition_date(partition.name)
    if date is None:
        raise ValueError(f"not a date partition: {partition}")
    tables = [pq.read_table(path).replace_schema_metadata(None) for path in parts]
    merged = merge_parts(dataset, tables)
    key_dir = partition.parent
    staging = key_dir / f"{STAGING_PREFIX}{partition.name}"
    if staging.exists():
        shutil.rmtree(staging)
    name = part_name(max(part_batch(p.name) or 0 for p in parts), compacted=True)
    key = _partition_key(dataset, key_dir)
    write_part_file(staging / name, dataset, key, date, merged)  # creates staging durably
    exchange_dirs(staging, partition)
    shutil.rmtree(staging)  # it now holds the old parts
    fsync_dir(key_dir)
    return int(merged.num_rows)


def compact_archive(root: Path, max_parts: int, today: str) -> CompactionResult:
    """Compact every partition that needs it (see module docstring). ``today`` is the current
    UTC date, ``YYYY-MM-DD``."""
    result = CompactionResult()
    for dataset in DATASETS:
        dataset_dir = root / dataset
        if not dataset_dir.is_dir():
            continue
        for key_dir in _visible_dirs(dataset_dir):
            for partition in _visible_dirs(key_dir):
                date = partition_date(partition.name)
                if date is None:
                    continue
                parts = partition_parts(partition)
                if len(parts) > max_parts or (date < today and len(parts) > 1):
                    result.rows += compact_partition(dataset, partition, parts)
                    result.partitions += 1
                    result.files_before += len(parts)
                    result.files_after += 1
    return result
