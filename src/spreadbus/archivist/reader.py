"""Reading the archive: for the QuantEngine's warm start, the web API and researchers.

``archive_dir`` is ``<data-dir>/archive`` (:func:`spreadbus.archivist.layout.archive_root`).
Times are epoch milliseconds, ``start_ms`` inclusive and ``end_ms`` exclusive. Readers never
see half-written files (they appear by rename); they apply the same dedupe as compaction, so
a result never holds a row twice; and when a compaction swaps a partition between listing and
reading, they list again.

Any Parquet reader works too: ``pandas.read_parquet(archive_dir / "ticks")`` reads the whole
tick dataset with ``symbol`` and ``date`` from the Hive paths.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spreadbus.archivist.compaction import partition_parts
from spreadbus.archivist.convert import SCHEMAS, merge_parts
from spreadbus.archivist.layout import (
    DATASETS,
    PART_SUFFIX,
    Dataset,
    date_of_ms,
    decode_pair,
    is_hidden,
    key_dir,
    partition_date,
)

RETRIES: Final = 5


class ArchivePathError(ValueError):
    """A requested path is not a file of the archive (escapes it, is hidden, a link, ...)."""


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    path: str  # relative to the archive folder, "/"-separated: safe to put in a URL
    dataset: str
    key: str  # symbol, or pair as Y/X
    date: str
    size: int
    mtime_ms: int


def list_files(archive_dir: Path) -> list[ArchiveFile]:
    """Every visible Parquet file of the archive, sorted by path. Hidden entries (temporary
    files, staging folders, the spool) and symbolic links are never listed."""
    out: list[ArchiveFile] = []
    for dataset in DATASETS:
        dataset_dir = archive_dir / dataset
        if not _real_dir(dataset_dir):
            continue
        for key_path in _subdirs(dataset_dir):
            value = key_path.name.partition("=")[2]
            if not value:
                continue
            key = decode_pair(value) if dataset == "analytics" else value
            for partition in _subdirs(key_path):
                date = partition_date(partition.name)
                if date is None:
                    continue
                try:
                    entries = list(os.scandir(partition))
                except FileNotFoundError:
                    continue  # swapped out by a compaction just now
                for entry in entries:
                    if is_hidden(entry.name) or not entry.name.endswith(PART_SUFFIX):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    rel = Path(entry.path).relative_to(archive_dir).as_posix()
                    out.append(
                        ArchiveFile(
                            rel, dataset, key, date, info.st_size, info.st_mtime_ns // 10**6
                        )
                    )
    return sorted(out, key=lambda f: f.path)


def resolve_download(archive_dir: Path, rel_path: str) -> Path:
    """The file ``rel_path`` names inside the archive, or :class:`ArchivePathError` when it
    would leave the archive folder or is not a plain visible Parquet file: absolute paths,
    ``..``, backslashes, hidden components, symbolic links anywhere below the archive folder.
    :class:`FileNotFoundError` when the (safe) path does not exist."""
    if not rel_path or "\x00" in rel_path or "\\" in rel_path:
        raise ArchivePathError("invalid archive path")
    pure = PurePosixPath(rel_path)
    if pure.is_absolute() or rel_path.startswith("/"):
        raise ArchivePathError("archive paths are relative")
    parts = rel_path.split("/")
    if any(part in ("", ".", "..") or is_hidden(part) for part in parts):
        raise ArchivePathError("archive path has an empty, relative or hidden component")
    if not parts[-1].endswith(PART_SUFFIX):
        raise ArchivePathError("only Parquet files can be downloaded")
    root = archive_dir.resolve(strict=False)
    current = root
    for part in parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            raise FileNotFoundError(rel_path) from None
        if stat.S_ISLNK(info.st_mode):
            raise ArchivePathError("archive path goes through a symbolic link")
    if not stat.S_ISREG(info.st_mode):
        raise ArchivePathError("not a regular file")
    if not current.resolve(strict=True).is_relative_to(root):
        raise ArchivePathError("archive path escapes the archive folder")
    return current


def read_ticks(
    archive_dir: Path,
    symbol: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    venue: str | None = None,
) -> pd.DataFrame:
    """Archived ticks of one symbol (all venues, or one: ``binance``, ``ghost``, ...), sorted by
    trade time; columns as in :data:`spreadbus.archivist.convert.TICK_SCHEMA` plus ``symbol``."""
    table = _read_dataset("ticks", archive_dir, symbol, start_ms, end_ms)
    if venue is not None:
        table = table.filter(pc.equal(table["venue"], venue))
    return _with_key(table, "symbol", symbol)


def read_candles(
    archive_dir: Path, symbol: str, start_ms: int | None = None, end_ms: int | None = None
) -> pd.DataFrame:
    """Archived 1-minute candles of one symbol (``ts`` is the minute's start)."""
    return _with_key(
        _read_dataset("candles", archive_dir, symbol, start_ms, end_ms), "symbol", symbol
    )


def read_analytics(
    archive_dir: Path, pair: str, start_ms: int | None = None, end_ms: int | None = None
) -> pd.DataFrame:
    """Archived per-second analytics of one pair ``Y/X``, one row per second."""
    table = _read_dataset("analytics", archive_dir, pair, start_ms, end_ms)
    return _with_key(table, "pair", pair)


def _with_key(table: pa.Table, name: str, value: str) -> pd.DataFrame:
    frame: pd.DataFrame = table.to_pandas()
    frame.insert(1, name, value)
    return frame


def _read_dataset(
    dataset: Dataset, archive_dir: Path, key: str, start_ms: int | None, end_ms: int | None
) -> pa.Table:
    folder = key_dir(archive_dir, dataset, key)
    first = date_of_ms(start_ms) if start_ms is not None else None
    last = date_of_ms(end_ms - 1) if end_ms is not None else None

    def wanted(date: str) -> bool:
        return (first is None or date >= first) and (last is None or date <= last)

    for attempt in range(RETRIES):
        try:
            tables = _read_partitions(folder, wanted)
            break
        except FileNotFoundError:
            if attempt == RETRIES - 1:
                raise
    schema = SCHEMAS[dataset]
    if not tables:
        return schema.empty_table()
    table = merge_parts(dataset, tables)
    ts = table["ts"].cast(pa.int64())
    if start_ms is not None:
        table = table.filter(pc.greater_equal(ts, start_ms))
        ts = table["ts"].cast(pa.int64())
    if end_ms is not None:
        table = table.filter(pc.less(ts, end_ms))
    return table


def _read_partitions(folder: Path, wanted: Callable[[str], bool]) -> list[pa.Table]:
    """Tables of every part of the wanted dates, oldest batch first within a partition.
    Raises FileNotFoundError when a compaction swapped a partition under us (retry)."""
    if not _real_dir(folder):
        return []
    tables: list[pa.Table] = []
    for partition in _subdirs(folder):
        date = partition_date(partition.name)
        if date is None or not wanted(date):
            continue
        for path in partition_parts(partition):
            tables.append(pq.read_table(path).replace_schema_metadata(None))
    return tables


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(
                Path(e.path)
                for e in entries
                if not is_hidden(e.name) and e.is_dir(follow_symlinks=False)
            )
    except FileNotFoundError:
        return []
