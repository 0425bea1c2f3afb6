"""The Archivist's pure parts and its file primitives, without Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from spreadbus.archivist import spool as spool_mod
from spreadbus.archivist.atomic import exchange_dirs, remove_temp_files, write_bytes_atomic
from spreadbus.archivist.convert import (
    TICK_SCHEMA,
    join_candles,
    merge_parts,
    revised_candles,
    settle_analytics,
    ticks_from_records,
)
from spreadbus.archivist.layout import (
    date_of_ms,
    day_start_ms,
    decode_pair,
    encode_pair,
    part_batch,
    part_name,
)
from spreadbus.archivist.manifest import (
    Manifest,
    ManifestError,
    load_manifest,
    manifest_from_json,
    manifest_to_json,
    save_manifest,
)
from spreadbus.archivist.spool import (
    Spool,
    SpoolRecord,
    decode_segment,
    encode_record,
    read_segments,
)
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import REAL_PARTS, SEP, legacy_fields, to_fields
from spreadbus.config import SettingsError, load_settings

MIDNIGHT = 1795305600000  # 2026-11-22 00:00 UTC


def entry(
    symbol: str, n: int, ms: int, ghost: bool = False, legacy: bool = False
) -> tuple[str, str, dict[str, str]]:
    tick = Tick(
        symbol,
        n,
        "98231.40",
        "0.012",
        "sell",
        ms,
        ms + 5,
        ms + 7.25,
        "ghost" if ghost else "binance",
    )
    if ghost:
        return keys.ghost_stream(symbol), f"{ms + 40}-0", to_fields(tick, ghost=True)
    fields = legacy_fields(tick) if legacy else to_fields(tick)
    return keys.tick_stream(symbol), tick.stream_id, fields


def changed(fields: dict[str, str], name: str, value: str) -> dict[str, str]:
    """A real tick's entry with one value replaced, in the entry's own layout."""
    if "t" not in fields:
        return fields | {name: value}  # the nine-field layout
    parts = fields["t"].split(SEP)
    parts[REAL_PARTS.index(name)] = value
    return {"t": SEP.join(parts)}


# -- spool ------------------------------------------------------------------------------------


def test_spool_round_trip_and_cursors(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.recover(0) == {}
    spool.append([entry("BTCUSDT", 1, 1000), entry("BTCUSDT", 2, 1001)])
    spool.append([entry("BTCUSDT", 2, 1001, ghost=True)], [7])  # with its ordinal
    sealed = spool.seal()
    spool.append([entry("ETHUSDT", 9, 1005)])  # after the seal: a new segment
    assert [seq for seq, _ in sealed] == [1]
    assert [r.entry_id for r in read_segments(p for _, p in sealed)] == [
        "1000-1",
        "1001-2",
        "1041-0",
    ]
    assert spool.pending == 4
    spool.close()

    again = Spool(tmp_path / "spool")
    cursors = again.recover(0)
    assert cursors == {
        keys.tick_stream("BTCUSDT"): ((1001, 2), None),
        keys.ghost_stream("BTCUSDT"): ((1041, 0), 7),
        keys.tick_stream("ETHUSDT"): ((1005, 9), None),
    }
    assert again.pending == 4
    assert again.discard(1) == 1
    assert again.pending == 1
    assert [seq for seq, _ in again.seal()] == [2]
    again.close()
    # segments the manifest already covers are deleted on recovery
    third = Spool(tmp_path / "spool")
    assert third.recover(2) == {}
    assert not list((tmp_path / "spool").glob("seg-*"))
    third.close()


def test_spool_cuts_a_torn_or_corrupt_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.recover(0)
    spool.append([entry("BTCUSDT", i, 1000 + i) for i in range(1, 4)])
    spool.close()
    segment = next(tmp_path.glob("seg-*"))
    good = segment.read_bytes()
    records, valid = decode_segment(good)
    assert (len(records), valid) == (3, len(good))

    torn = encode_record(*entry("BTCUSDT", 4, 1004))[:-5]
    segment.write_bytes(good + torn)
    assert Spool(tmp_path).recover(0) == {keys.tick_stream("BTCUSDT"): ((1003, 3), None)}
    assert segment.read_bytes() == good  # cut back to the last whole record

    line = encode_record(*entry("BTCUSDT", 4, 1004))
    flipped = line[:20] + bytes([line[20] ^ 1]) + line[21:]  # checksum no longer matches
    segment.write_bytes(good + flipped + encode_record(*entry("BTCUSDT", 5, 1005)))
    assert Spool(tmp_path).recover(0) == {keys.tick_stream("BTCUSDT"): ((1003, 3), None)}
    assert segment.read_bytes() == good


def test_failed_append_leaves_no_garbage_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    spool.recover(0)
    spool.append([entry("BTCUSDT", 1, 1000)])

    def disk_full(handle: object, data: bytes) -> None:
        os.write(handle.fileno(), data[:10])  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_mod, "_write_all", disk_full)
    with pytest.raises(OSError, match="No space"):
        spool.append([entry("BTCUSDT", 2, 1001)])
    monkeypatch.undo()
    spool.append([entry("BTCUSDT", 2, 1001)])  # the caller retries: a fresh segment
    ids = [r.entry_id for r in read_segments(p for _, p in spool.seal())]
    assert ids == ["1000-1", "1001-2"]
    spool.close()


# -- conversion -------------------------------------------------------------------------------


def test_ticks_from_records_once_per_entry_and_partitioned_by_date() -> None:
    stream = keys.tick_stream("BTCUSDT")
    records = [
        SpoolRecord(*entry("BTCUSDT", 1, MIDNIGHT - 10)),  # at or below the cursor: skipped
        SpoolRecord(*entry("BTCUSDT", 2, MIDNIGHT - 5)),
        SpoolRecord(*entry("BTCUSDT", 3, MIDNIGHT + 5)),
        SpoolRecord(*entry("BTCUSDT", 3, MIDNIGHT + 5)),  # the same entry twice
        SpoolRecord(*entry("BTCUSDT", 3, MIDNIGHT + 5, ghost=True)),
        SpoolRecord(stream, f"{MIDNIGHT + 9}-4", {"symbol": "BTCUSDT", "id": "4"}),  # not a tick
    ]
    batch = ticks_from_records(records, {stream: (MIDNIGHT - 10, 1)})
    assert (batch.count, batch.duplicates, batch.rejected) == (3, 2, 1)
    assert batch.cursors == {
        stream: (MIDNIGHT + 9, 4),
        keys.ghost_stream("BTCUSDT"): (MIDNIGHT + 45, 0),
    }
    assert sorted(batch.tables) == [("BTCUSDT", "2026-11-21"), ("BTCUSDT", "2026-11-22")]
    today = batch.tables[("BTCUSDT", "2026-11-22")].to_pylist()
    assert [r["venue"] for r in today] == ["binance", "ghost"]
    row = today[0]
    assert row["price_text"] == "98231.40"  # exact text kept, trailing zero included
    assert row["price"] == 98231.4
    assert row["trade_id"] == 3
    assert row["side"] == "sell"
    assert row["stream_id"] == f"{MIDNIGHT + 5}-3"
    assert int(row["recv_ts"].timestamp() * 1e6) == (MIDNIGHT + 5) * 1000 + 7250
    assert batch.tables[("BTCUSDT", "2026-11-22")].schema.equals(TICK_SCHEMA)


def test_join_candles_keeps_minutes_closed_on_every_field() -> None:
    fields = {name: [(0, 1.0), (60000, 2.0)] for name in keys.CANDLE_FIELDS}
    fields["close"] = [(0, 1.5)]  # the close rule has not closed minute 2 yet
    assert join_candles(fields) == [(0, 1.0, 1.0, 1.0, 1.5, 1.0)]


def test_revised_candles_are_new_minutes_and_changed_ones() -> None:
    old = [(0, 1.0, 2.0, 0.5, 1.5, 3.0), (60000, 1.5, 2.0, 1.0, 1.2, 1.0)]
    assert revised_candles(old, -1, None) == old  # nothing archived yet
    assert revised_candles(old, 60000, None) == []  # first look after a restart: as archived
    late = [old[0], (60000, 1.5, 2.5, 1.0, 1.2, 1.5), (120000, 1.2, 1.2, 1.2, 1.2, 0.1)]
    previous = {row[0]: row for row in old}
    assert revised_candles(late, 60000, previous) == late[1:]  # a late trade, and a new minute


def test_settle_analytics_holds_back_the_newest_second() -> None:
    series = {"beta": [(1000, 1.0), (2000, 2.0)], "zscore": [(1000, 0.1)], "corr": []}
    assert settle_analytics(series) == {"beta": [(1000, 1.0)], "zscore": [(1000, 0.1)]}
    assert settle_analytics({"beta": []}) == {}


def _ticks(ids: list[int], venue: str = "binance") -> pa.Table:
    rows = [
        {
            "ts": i,
            "venue": venue,
            "trade_id": i,
            "price": 1.0,
            "qty": 1.0,
            "side": "buy",
            "event_ts": i,
            "recv_ts": i * 1000,
            "price_text": "1",
            "qty_text": "1",
            "stream_id": f"{i}-{i}",
        }
        for i in ids
    ]
    return pa.Table.from_pylist(rows, schema=TICK_SCHEMA)


def test_merge_parts_dedupes_by_dataset_rule() -> None:
    merged = merge_parts("ticks", [_ticks([3, 1, 2]), _ticks([2, 3, 4]), _ticks([1], "ghost")])
    assert [(r["venue"], r["trade_id"]) for r in merged.to_pylist()] == [
        ("binance", 1),
        ("ghost", 1),
        ("binance", 2),
        ("binance", 3),
        ("binance", 4),
    ]
    candle = pa.schema(
        [("ts", pa.timestamp("ms", tz="UTC"))] + [(f, pa.float64()) for f in keys.CANDLE_FIELDS]
    )
    old = pa.Table.from_pylist(
        [{"ts": 0, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}],
        schema=candle,
    )
    new = pa.Table.from_pylist(
        [{"ts": 0, "open": 2.0, "high": 2.0, "low": 2.0, "close": 2.0, "volume": 2.0}],
        schema=candle,
    )
    assert merge_parts("candles", [old, new])["open"].to_pylist() == [2.0]  # newest wins
    metrics = pa.schema(
        [("ts", pa.timestamp("ms", tz="UTC"))]
        + [(m, pa.float64()) for m in ("beta", "spread", "zscore", "corr", "adf_pvalue")]
    )
    first = pa.Table.from_pylist([{"ts": 1000, "beta": 1.0}], schema=metrics)
    second = pa.Table.from_pylist(
        [{"ts": 1000, "adf_pvalue": 0.05}, {"ts": 2000, "beta": 2.0}], schema=metrics
    )
    rows = merge_parts("analytics", [first, second]).to_pylist()
    assert [(r["beta"], r["adf_pvalue"]) for r in rows] == [(1.0, 0.05), (2.0, None)]


# -- layout, manifest, files ------------------------------------------------------------------


def test_layout_names() -> None:
    assert encode_pair("ETHUSDT/BTCUSDT") == "ETHUSDT-BTCUSDT"
    assert decode_pair("ETHUSDT-BTCUSDT") == "ETHUSDT/BTCUSDT"
    assert part_batch(part_name(42)) == 42
    assert part_batch(part_name(42, compacted=True)) == 42
    assert part_batch(".part-0000000042.parquet.123-ab.tmp") is None
    assert date_of_ms(MIDNIGHT - 1) == "2026-11-21"
    assert date_of_ms(MIDNIGHT) == "2026-11-22"
    assert day_start_ms("2026-11-22") == MIDNIGHT


def test_manifest_round_trip_and_refuses_garbage(tmp_path: Path) -> None:
    manifest = Manifest(
        batch=3,
        spool_seq=7,
        streams={"s": (5, 6)},
        candles={"BTCUSDT": 60000},
        analytics={"A/B|beta": 1000},
        ticks_total=12,
    )
    assert manifest_from_json(manifest_to_json(manifest)) == manifest
    assert load_manifest(tmp_path) == Manifest()
    save_manifest(tmp_path, manifest)
    assert load_manifest(tmp_path) == manifest
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError):
        load_manifest(tmp_path)


def test_exchange_dirs_and_leftover_recovery(tmp_path: Path) -> None:
    a, b = tmp_path / ".compact-date=2026-11-22", tmp_path / "date=2026-11-22"
    a.mkdir()
    b.mkdir()
    write_bytes_atomic(a / "merged", b"new")
    write_bytes_atomic(b / "old", b"old")
    exchange_dirs(a, b)
    assert [p.name for p in b.iterdir()] == ["merged"]
    assert [p.name for p in a.iterdir()] == ["old"]
    (b / ".merged.1-ab.tmp").write_bytes(b"half")
    assert remove_temp_files(tmp_path) == 2  # the staging folder and the temporary file
    assert [p.name for p in tmp_path.iterdir()] == ["date=2026-11-22"]
    # a crash inside the two-rename fallback: the partition is put back
    aside = tmp_path / ".restore-date=2026-11-23"
    aside.mkdir()
    (aside / "part").write_bytes(b"x")
    assert remove_temp_files(tmp_path) == 1
    assert (tmp_path / "date=2026-11-23" / "part").read_bytes() == b"x"


def test_archive_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADBUS_ARCHIVE_INTERVAL", "0.2s")
    monkeypatch.setenv("SPREADBUS_ARCHIVE_COMPACT_PARTS", "8")
    settings = load_settings()
    assert settings.archive_interval == 0.2
    assert settings.archive_compact_parts == 8
    monkeypatch.setenv("SPREADBUS_ARCHIVE_COMPACT_PARTS", "1")
    with pytest.raises(SettingsError, match="archive_compact_parts"):
        load_settings()


@pytest.mark.parametrize("legacy", [False, True], ids=["compact", "nine-field"])
def test_fast_and_slow_conversion_agree_with_the_codec(legacy: bool) -> None:
    """The vectorized path and the entry-by-entry codec path give the same rows, and the
    codec's rules decide what is a tick (here, odd-but-valid text forces the slow path), in
    both entry layouts (the older nine-field entries of a user's spool stay readable)."""
    stream = keys.tick_stream("ETHUSDT")
    good = [SpoolRecord(*entry("ETHUSDT", i, MIDNIGHT + i, legacy=legacy)) for i in range(1, 6)]
    first = dict(good[0].fields)  # type: ignore[arg-type]
    bad_side = changed(first, "side", "hold")
    nan_price = changed(first, "price", "nan")
    zero_price = changed(first, "price", "0")
    spaced = changed(first, "price", "98_231.50")  # Python reads it, Arrow does not
    extra = [
        SpoolRecord(stream, f"{MIDNIGHT + 10}-10", bad_side),
        SpoolRecord(stream, f"{MIDNIGHT + 11}-11", nan_price),
        SpoolRecord(stream, f"{MIDNIGHT + 12}-12", zero_price),
    ]
    fast = ticks_from_records([*good, *extra], {})
    assert (fast.count, fast.rejected) == (5, 3)
    slow = ticks_from_records(
        [*good, *extra, SpoolRecord(stream, f"{MIDNIGHT + 13}-13", spaced)], {}
    )
    assert (slow.count, slow.rejected) == (6, 3)
    fast_rows = fast.tables[("ETHUSDT", "2026-11-22")].to_pylist()
    slow_rows = slow.tables[("ETHUSDT", "2026-11-22")].to_pylist()
    odd = [r for r in slow_rows if r["stream_id"] == f"{MIDNIGHT + 13}-13"]
    assert [r for r in slow_rows if r not in odd] == fast_rows
    assert odd[0]["price_text"] == "98_231.50"
    assert odd[0]["price"] == 98231.5


def test_small_segments_and_chunks_change_nothing(tmp_path: Path) -> None:
    entries = [entry("BTCUSDT", i, MIDNIGHT + i * 10) for i in range(1, 40)]
    entries += [entry("BTCUSDT", i, MIDNIGHT + i * 10, ghost=True) for i in range(1, 40)]
    spool = Spool(tmp_path, max_segment_bytes=1000)  # compact entries: ~120 bytes a record
    spool.recover(0)
    for i in range(0, len(entries), 7):
        spool.append(entries[i : i + 7])
    sealed = spool.seal()
    assert len(sealed) > 5  # rotated by size, not only by seal
    records = list(read_segments(p for _, p in sealed))
    whole = ticks_from_records(records, {})
    chunked = ticks_from_records(records, {}, chunk=4)
    assert (whole.count, chunked.count) == (78, 78)
    assert whole.cursors == chunked.cursors
    assert {k: t.to_pylist() for k, t in whole.tables.items()} == {
        k: t.to_pylist() for k, t in chunked.tables.items()
    }
    spool.close()
