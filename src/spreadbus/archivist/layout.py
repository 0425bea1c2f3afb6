"""Where things live under ``<data-dir>/archive/``; pure path arithmetic, no I/O.

::

    archive/
      ticks/symbol=BTCUSDT/date=2026-11-22/part-0000000042.parquet
      candles/symbol=BTCUSDT/date=2026-11-22/part-0000000042.parquet
      analytics/pair=ETHUSDT-BTCUSDT/date=2026-11-22/part-0000000042.parquet
      .spool/           the Archivist's private state: spool segments, manifest, lock

Partition columns (``symbol``, ``pair``, ``date``) live only in the path, the Hive convention:
a file never repeats them, so every Hive-aware reader (pandas, pyarrow.dataset, DuckDB, Spark)
can read a dataset root without a type clash between path and file. Each file also carries
them in its Parquet key-value metadata (``spreadbus.*``) for readers of a single file.

A pair ``Y/X`` is written ``Y-X`` in paths: symbols are ``[A-Z0-9]`` only, so the hyphen is
unambiguous, needs no escaping in URLs and is safe on every filesystem.

Everything whose name starts with ``.`` (temporary files, compaction staging folders, the
spool) is ignored by Parquet dataset readers, by :mod:`spreadbus.archivist.reader` and by the
download endpoint.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Final, Literal

Dataset = Literal["ticks", "candles", "analytics"]
DATASETS: Final[tuple[Dataset, ...]] = ("ticks", "candles", "analytics")
PARTITION_KEY: Final[dict[Dataset, str]] = {
    "ticks": "symbol",
    "candles": "symbol",
    "analytics": "pair",
}

ARCHIVE_DIRNAME: Final = "archive"
SPOOL_DIRNAME: Final = ".spool"
PART_SUFFIX: Final = ".parquet"
TMP_SUFFIX: Final = ".tmp"
STAGING_PREFIX: Final = ".compact-"
RESTORE_PREFIX: Final = ".restore-"
DAY_MS: Final = 86_400_000

_PART_RE = re.compile(r"^part-(\d{10})(?:-c)?\.parquet$")
_DATE_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def archive_root(data_dir: Path) -> Path:
    """``<data-dir>/archive``."""
    return data_dir / ARCHIVE_DIRNAME


def spool_dir(root: Path) -> Path:
    """The Archivist's private state folder inside the archive root."""
    return root / SPOOL_DIRNAME


def encode_pair(pair: str) -> str:
    """``ETHUSDT/BTCUSDT`` -> ``ETHUSDT-BTCUSDT`` (the form used in paths)."""
    return pair.replace("/", "-")


def decode_pair(text: str) -> str:
    """Inverse of :func:`encode_pair`."""
    return text.replace("-", "/")


@lru_cache(maxsize=4096)
def day_text(day: int) -> str:
    """Days since the epoch -> ``YYYY-MM-DD`` (UTC)."""
    return datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()


def date_of_ms(ms: int) -> str:
    """UTC calendar date of an epoch-millisecond time, ``YYYY-MM-DD``."""
    return day_text(ms // DAY_MS)


def day_start_ms(date: str) -> int:
    """Epoch ms of 00:00 UTC of ``YYYY-MM-DD``."""
    moment = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def key_dir(root: Path, dataset: Dataset, key: str) -> Path:
    """``archive/<dataset>/<symbol=K | pair=Y-X>`` (``key`` as in Redis: a symbol or ``Y/X``)."""
    value = encode_pair(key) if dataset == "analytics" else key
    return root / dataset / f"{PARTITION_KEY[dataset]}={value}"


def partition_dir(root: Path, dataset: Dataset, key: str, date: str) -> Path:
    return key_dir(root, dataset, key) / f"date={date}"


def part_name(batch: int, compacted: bool = False) -> str:
    """``part-<batch>.parquet``; a compaction of parts up to batch ``n`` is ``part-<n>-c``."""
    return f"part-{batch:010d}{'-c' if compacted else ''}{PART_SUFFIX}"


def part_batch(name: str) -> int | None:
    """Batch number of a part file name, ``None`` if the name is not a part file."""
    match = _PART_RE.match(name)
    return int(match.group(1)) if match else None


def partition_date(dirname: str) -> str | None:
    """``date=2026-11-22`` -> ``2026-11-22``; ``None`` for anything else."""
    match = _DATE_RE.match(dirname)
    return match.group(1) if match else None


def is_hidden(name: str) -> bool:
    return name.startswith((".", "_"))
