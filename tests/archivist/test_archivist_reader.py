"""Reading the archive back: the helpers the web API and the engine's warm start use."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spreadbus.archivist.layout import spool_dir
from spreadbus.archivist.reader import (
    ArchivePathError,
    list_files,
    read_analytics,
    read_candles,
    read_ticks,
    resolve_download,
)
from spreadbus.archivist.spool import Spool
from spreadbus.archivist.writer import ArchiveWriter
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields

MIDNIGHT = 1795305600000  # 2026-11-22 00:00 UTC


def build_archive(root: Path) -> None:
    """Two symbols, real and ghost, around midnight, in two batches."""
    writer = ArchiveWriter(root)
    writer.recover()
    spool = Spool(spool_dir(root))
    spool.recover(0)
    for batch in range(2):
        entries = []
        for symbol in ("BTCUSDT", "ETHUSDT"):
            for i in range(50):
                n = batch * 50 + i
                ms = MIDNIGHT - 50_000 + n * 1000
                tick = Tick(symbol, n, f"{100 + n}.50", "1.000", "buy", ms, ms, ms + 1.0, "sim")
                entries.append((keys.tick_stream(symbol), tick.stream_id, to_fields(tick)))
                shadow = Tick(symbol, n, f"{100 + n}.51", "1.000", "buy", ms, ms, ms + 9.0, "ghost")
                entries.append(
                    (keys.ghost_stream(symbol), f"{ms + 9}-0", to_fields(shadow, ghost=True))
                )
        spool.append(entries)
        candles = {"BTCUSDT": [(MIDNIGHT + batch * 60000, 1.0, 2.0, 0.5, 1.5, 10.0)]}
        analytics = {"ETHUSDT/BTCUSDT": {"beta": [(MIDNIGHT + batch * 1000, 1.1)]}}
        writer.write_batch(spool, spool.seal(), candles, analytics)
    spool.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive with everything a reader must not show or serve next to the real files: a
    temporary file, a staging folder, links to the outside, the private spool."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "archive"
    build_archive(root)
    partition = root / "ticks" / "symbol=BTCUSDT" / "date=2026-11-22"
    (partition / ".part-0000000009.parquet.1-ab.tmp").write_bytes(b"half")
    (root / "ticks" / "symbol=BTCUSDT" / ".compact-date=2026-11-22").mkdir()
    outside = base / "secret.parquet"
    outside.write_bytes(b"secret")
    os.symlink(outside, partition / "part-0000000099.parquet")
    os.symlink(base, root / "ticks" / "symbol=LINKUSDT")
    os.symlink(root / "ticks", root / "link")
    return root


def test_list_files_shows_only_visible_parquet(hostile: Path) -> None:
    root = hostile
    files = list_files(root)
    paths = [f.path for f in files]
    assert "ticks/symbol=BTCUSDT/date=2026-11-21/part-0000000001.parquet" in paths
    assert "ticks/symbol=BTCUSDT/date=2026-11-22/part-0000000002.parquet" in paths
    assert "analytics/pair=ETHUSDT-BTCUSDT/date=2026-11-22/part-0000000001.parquet" in paths
    assert "candles/symbol=BTCUSDT/date=2026-11-22/part-0000000002.parquet" in paths
    assert all(p.endswith(".parquet") and "/." not in p and not p.startswith(".") for p in paths)
    assert not [p for p in paths if "0000000099" in p or "LINKUSDT" in p]
    by_path = {f.path: f for f in files}
    info = by_path["analytics/pair=ETHUSDT-BTCUSDT/date=2026-11-22/part-0000000001.parquet"]
    assert (info.dataset, info.key, info.date) == ("analytics", "ETHUSDT/BTCUSDT", "2026-11-22")
    assert info.size > 0
    for f in files:
        assert resolve_download(root, f.path) == root / f.path


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../secret.parquet",
        "ticks/../../secret.parquet",
        "ticks/symbol=BTCUSDT/../../../secret.parquet",
        "/etc/passwd",
        "//etc/passwd",
        "ticks\\symbol=BTCUSDT\\x.parquet",
        "ticks/symbol=BTCUSDT/date=2026-11-22/part-0000000002.parquet\x00.txt",
        ".spool/manifest.json",
        ".spool/seg-000000000001.log",
        "ticks/symbol=BTCUSDT/date=2026-11-22/.part-0000000009.parquet.1-ab.tmp",
        "ticks/symbol=BTCUSDT/./date=2026-11-22/part-0000000001.parquet",
        "ticks//symbol=BTCUSDT/date=2026-11-22/part-0000000001.parquet",
        "ticks/symbol=BTCUSDT/date=2026-11-22",
        "ticks/symbol=BTCUSDT/date=2026-11-22/part-0000000099.parquet",  # link to outside
        "link/symbol=BTCUSDT/date=2026-11-22/part-0000000001.parquet",  # through a linked dir
    ],
)
def test_resolve_download_refuses_escapes(hostile: Path, bad: str) -> None:
    with pytest.raises(ArchivePathError):
        resolve_download(hostile, bad)


def test_resolve_download_missing_file(hostile: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_download(hostile, "ticks/symbol=BTCUSDT/date=2026-11-22/part-0000000077.parquet")


def test_read_helpers_filter_and_never_repeat(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    everything = read_ticks(root, "BTCUSDT")
    assert len(everything) == 200
    assert list(everything.columns[:3]) == ["ts", "symbol", "venue"]
    assert everything["ts"].is_monotonic_increasing
    assert set(everything["symbol"]) == {"BTCUSDT"}
    window = read_ticks(root, "BTCUSDT", MIDNIGHT - 10_000, MIDNIGHT + 10_000, venue="ghost")
    assert len(window) == 20  # [start, end): 10 s before and 10 s after midnight
    assert set(window["venue"]) == {"ghost"}
    assert window["ts"].min().value // 10**6 == MIDNIGHT - 10_000

    # a part written twice (e.g. copied by hand) is still read once
    part = root / "ticks" / "symbol=BTCUSDT" / "date=2026-11-22" / "part-0000000002.parquet"
    (part.parent / "part-0000000005.parquet").write_bytes(part.read_bytes())
    assert len(read_ticks(root, "BTCUSDT")) == 200

    candles = read_candles(root, "BTCUSDT")
    assert list(candles["open"]) == [1.0, 1.0]
    analytics = read_analytics(root, "ETHUSDT/BTCUSDT")
    assert list(analytics["beta"]) == [1.1, 1.1]
    assert set(analytics["pair"]) == {"ETHUSDT/BTCUSDT"}

    empty = read_ticks(root, "SOLUSDT")
    assert empty.empty
    assert list(empty.columns) == list(everything.columns)


def test_single_file_carries_its_partition(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    path = (
        root / "analytics" / "pair=ETHUSDT-BTCUSDT" / "date=2026-11-22" / "part-0000000001.parquet"
    )
    meta = pq.read_schema(path).metadata
    assert meta[b"spreadbus.pair"] == b"ETHUSDT/BTCUSDT"
    assert meta[b"spreadbus.date"] == b"2026-11-22"
