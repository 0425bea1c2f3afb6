"""The durable spool: stream entries on local disk, before they become Parquet.

Redis trims tick streams after ~5 minutes whatever readers are doing, so the Archivist reads
continuously and appends every batch of entries here, fsynced, before it moves its read cursor.
A segment is an append-only file of lines ``<crc32 hex> <json [stream, id, fields]>\\n`` (fields
as an object, e.g. ``{"t": "<value>"}`` for the compact tick layout; an entry of the older
nine-field layout, in its usual order, as the list of its values); the checksum and the final
newline make a torn write (crash mid-append) detectable, and :meth:`Spool.recover` cuts a
segment back to its last whole record. The resume cursor of each stream is the last id in the
spool (or, when the spool was emptied into Parquet, the cursor the manifest committed), so no
entry is read twice or skipped.

Segments are numbered; the active one takes appends, :meth:`Spool.seal` closes it so a flush
can turn every sealed segment into Parquet, and :meth:`Spool.discard` deletes segments once the
manifest that covers them is committed.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import orjson

from spreadbus.archivist.atomic import fsync_dir, make_dirs
from spreadbus.bus.streamid import ZERO as ZERO_ID
from spreadbus.bus.streamid import StreamId, format_id
from spreadbus.bus.streamid import parse as parse_id
from spreadbus.bus.tickschema import LEGACY_FIELDS

_NOTHING: Final[tuple[StreamId, None]] = (ZERO_ID, None)
SEGMENT_PREFIX: Final = "seg-"
SEGMENT_SUFFIX: Final = ".log"
_WIDTH: Final = len(LEGACY_FIELDS)
MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024


class SpoolRecord(NamedTuple):
    """One stream entry as read from Redis: the stream key, the entry id and its fields, either
    a mapping or the values of the older nine-field layout (:data:`LEGACY_FIELDS`) in order.
    ``ordinal`` is the entry's position in the stream (1 = the first entry ever added), when
    the reader knew it: comparing it with Redis' ``entries-added`` reveals trimmed entries."""

    stream: str
    entry_id: str
    fields: dict[str, str] | list[str]
    ordinal: int | None = None

    def as_dict(self) -> dict[str, str]:
        if isinstance(self.fields, list):
            return dict(zip(LEGACY_FIELDS, self.fields, strict=True))
        return self.fields


Entry = tuple[str, str, Mapping[str, str]]


def encode_record(
    stream: str, entry_id: str, fields: Mapping[str, str], ordinal: int | None = None
) -> bytes:
    payload: Mapping[str, str] | list[str] = fields
    if tuple(fields) == LEGACY_FIELDS:
        payload = list(fields.values())
    item = [stream, entry_id, payload] if ordinal is None else [stream, entry_id, payload, ordinal]
    body = orjson.dumps(item)
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_segment(data: bytes) -> tuple[list[SpoolRecord], int]:
    """Whole records of a segment and the byte length they cover; stops at the first torn or
    corrupt line (everything after it was written by the same interrupted append)."""
    records: list[SpoolRecord] = []
    append = records.append
    position = 0
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn line without its newline
    crc32, loads = zlib.crc32, orjson.loads
    for line in lines:
        body = line[9:]
        try:
            if int(line[:8], 16) != crc32(body) or line[8] != 32:  # 32: the space
                break
            item = loads(body)
            stream, entry_id, fields = item[0], item[1], item[2]
            ordinal = item[3] if len(item) == 4 else None
        except (ValueError, TypeError, IndexError, KeyError):
            break
        if (
            stream.__class__ is not str
            or entry_id.__class__ is not str
            or not (
                fields.__class__ is dict or (fields.__class__ is list and len(fields) == _WIDTH)
            )
            or not (ordinal is None or ordinal.__class__ is int)
            or len(item) > 4
        ):
            break
        append(SpoolRecord(stream, entry_id, fields, ordinal))
        position += len(line) + 1
    return records, position


def segment_name(seq: int) -> str:
    return f"{SEGMENT_PREFIX}{seq:012d}{SEGMENT_SUFFIX}"


def segment_seq(path: Path) -> int | None:
    name = path.name
    if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
        return None
    digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def _write_all(handle: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError("short write to the spool")
        view = view[written:]


def read_segments(paths: Iterable[Path]) -> Iterator[SpoolRecord]:
    """Every whole record of the given segments, in order."""
    for path in paths:
        records, _ = decode_segment(path.read_bytes())
        yield from records


class Spool:
    """Append-only, fsynced segments in one folder. Thread-safe: the reader appends from a
    worker thread while a flush seals and discards from another."""

    def __init__(self, directory: Path, max_segment_bytes: int = MAX_SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_segment_bytes = max_segment_bytes
        self.pending = 0  # records on disk not yet discarded (archived)
        self._lock = threading.Lock()
        self._active: io.FileIO | None = None
        self._active_seq = 0
        self._active_count = 0
        self._active_bytes = 0
        self._next_seq = 1
        self._sealed: dict[int, int] = {}  # seq -> record count

    def recover(self, consumed_seq: int) -> dict[str, tuple[StreamId, int | None]]:
        """Start up after any kind of stop: delete segments the manifest already covers (up to
        ``consumed_seq``), cut torn tails, seal what is left; returns the last spooled id of
        every stream, with its ordinal."""
        make_dirs(self.directory)
        last: dict[str, tuple[StreamId, int | None]] = {}
        highest = consumed_seq
        with self._lock:
            self._close_active()
            self._sealed.clear()
            self.pending = 0
            for path in sorted(self.directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}")):
                seq = segment_seq(path)
                if seq is None:
                    continue
                highest = max(highest, seq)
                if seq <= consumed_seq:
                    path.unlink()
                    continue
                data = path.read_bytes()
                records, valid = decode_segment(data)
                if valid < len(data):
                    with open(path, "r+b") as handle:
                        handle.truncate(valid)
                        os.fsync(handle.fileno())
                if not records:
                    path.unlink()
                    continue
                for record in records:
                    entry = parse_id(record.entry_id)
                    if entry > last.get(record.stream, _NOTHING)[0]:
                        last[record.stream] = (entry, record.ordinal)
                self._sealed[seq] = len(records)
                self.pending += len(records)
            self._next_seq = highest + 1
        fsync_dir(self.directory)
        return last

    def append(self, entries: Sequence[Entry], ordinals: Sequence[int | None] = ()) -> int:
        """Append entries (with their ordinals, if given) durably: written and fsynced when
        this returns. Returns the count."""
        if not entries:
            return 0
        if ordinals:
            data = b"".join(
                encode_record(stream, eid, fields, ordinal)
                for (stream, eid, fields), ordinal in zip(entries, ordinals, strict=True)
            )
        else:
            data = b"".join(encode_record(stream, eid, fields) for stream, eid, fields in entries)
        with self._lock:
            if self._active is None:
                self._active_seq = self._next_seq
                self._next_seq += 1
                self._active = open(  # noqa: SIM115
                    self.directory / segment_name(self._active_seq), "ab", buffering=0
                )
                self._active_count = 0
                self._active_bytes = 0
                fsync_dir(self.directory)
            active = self._active
            start = active.tell()
            try:
                _write_all(active, data)
                os.fsync(active.fileno())
            except BaseException:
                # e.g. disk full: cut the partial write off and close this segment, so later
                # appends never land behind garbage (a reader stops at the first bad line).
                # The caller did not advance its cursor, so the entries will be read again.
                with contextlib.suppress(OSError):
                    os.ftruncate(active.fileno(), start)
                with contextlib.suppress(OSError):
                    active.close()
                self._active = None
                if self._active_count:
                    self._sealed[self._active_seq] = self._active_count
                raise
            self._active_count += len(entries)
            self._active_bytes += len(data)
            self.pending += len(entries)
            if self._active_bytes >= self.max_segment_bytes:
                self._close_active()  # bounded segments: a flush reads one at a time
        return len(entries)

    def seal(self) -> list[tuple[int, Path]]:
        """Close the active segment; returns every sealed segment not yet discarded, oldest
        first. Appends after this go to a new segment."""
        with self._lock:
            self._close_active()
            return [(seq, self.directory / segment_name(seq)) for seq in sorted(self._sealed)]

    def discard(self, up_to_seq: int) -> int:
        """Delete sealed segments up to ``up_to_seq`` (their records are archived)."""
        removed = 0
        with self._lock:
            for seq in sorted(s for s in self._sealed if s <= up_to_seq):
                (self.directory / segment_name(seq)).unlink(missing_ok=True)
                self.pending -= self._sealed.pop(seq)
                removed += 1
        if removed:
            fsync_dir(self.directory)
        return removed

    def close(self) -> None:
        with self._lock:
            self._close_active()

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None
            if self._active_count:
                self._sealed[self._active_seq] = self._active_count


__all__ = [
    "ZERO_ID",
    "Entry",
    "Spool",
    "SpoolRecord",
    "StreamId",
    "decode_segment",
    "encode_record",
    "format_id",
    "parse_id",
    "read_segments",
]
