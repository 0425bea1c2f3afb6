"""Append-only JSON-lines file with size rotation and a one-second crash window.

``spreadbus.jsonl`` is the live file; on rotation it becomes ``spreadbus.jsonl.1``, the old
``.1`` becomes ``.2`` and so on, and anything above ``backups`` is deleted, so the folder never
holds more than ``backups + 1`` files. Writes go through Python's buffer (one small syscall per
line would make the logger the slowest consumer on the bus); the buffer is flushed and fsynced
at most ``flush_interval`` seconds after a write, on rotation and on close, which bounds what a
crash can lose to about that long.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

LOG_FILE_NAME = "spreadbus.jsonl"
FLUSH_INTERVAL = 1.0


def log_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def log_files(directory: Path) -> list[Path]:
    """The live file and its rotated predecessors, oldest first (what exists now)."""
    backups = sorted(
        (int(suffix), path)
        for path in directory.glob(f"{LOG_FILE_NAME}.*")
        if (suffix := path.name.removeprefix(f"{LOG_FILE_NAME}.")).isdigit()
    )
    files = [path for _, path in reversed(backups)]
    live = directory / LOG_FILE_NAME
    if live.exists():
        files.append(live)
    return files


TAIL_BYTES = 256 * 1024  # how far back from a file's end the newest stream id is looked for


def last_stream_id(directory: Path) -> str | None:
    """The ``stream_id`` of the newest record on disk (records are written in stream order),
    or None. A torn last line (a crash mid-write) is skipped."""
    for path in reversed(log_files(directory)):
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(size - TAIL_BYTES, 0))
                tail = handle.read()
        except FileNotFoundError:
            continue
        for line in reversed(tail.splitlines()):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("stream_id"), str):
                return str(record["stream_id"])
    return None


def encode_line(record: Mapping[str, Any]) -> bytes:
    # default=str: a value orjson cannot encode must not cost us the line
    return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"


class RotatingJsonlSink:
    """Writes records as JSON lines under ``directory``; counts ``written`` and ``rotated``."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        backups: int,
        flush_interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.path = directory / LOG_FILE_NAME
        self.max_bytes = max_bytes
        self.backups = backups
        self.flush_interval = flush_interval
        self.written = 0
        self.rotated = 0
        self._clock = clock
        self._file: BinaryIO | None = None
        self._size = 0
        self._dirty = False
        self._last_sync = float("-inf")

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._size = self._file.tell()
        if self._size and not self._ends_with_newline():
            # A crash mid-line left a torn record; start ours on a line of its own.
            self._file.write(b"\n")
            self._size += 1

    def _handle(self) -> BinaryIO:
        if self._file is None:
            self.open()
        assert self._file is not None  # for mypy: open() set it
        return self._file

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            return existing.read(1) == b"\n"

    def write(self, record: Mapping[str, Any]) -> None:
        line = encode_line(record)
        if self._size and self._size + len(line) > self.max_bytes:
            self.rotate()
        self._handle().write(line)
        self._size += len(line)
        self.written += 1
        self._dirty = True
        self.sync_if_due()

    @property
    def dirty(self) -> bool:
        """Written since the last fsync."""
        return self._dirty

    def abandon(self) -> None:
        """Drop the file handle after a write error (a full disk): what the buffer still held
        may be lost or torn; :meth:`open` starts a fresh line and the caller re-writes."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self._size = 0
        self._dirty = False

    def sync_if_due(self) -> None:
        """Flush + fsync if something was written and the last sync is ``flush_interval`` old."""
        if self._dirty and self._clock() - self._last_sync >= self.flush_interval:
            self.sync()

    def sync(self) -> None:
        if self._file is not None and self._dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._dirty = False
        self._last_sync = self._clock()

    def rotate(self) -> None:
        self.close()
        for stale in log_files(self.directory):
            suffix = stale.name.removeprefix(f"{LOG_FILE_NAME}.")
            if suffix.isdigit() and int(suffix) >= self.backups:
                stale.unlink()  # also what an earlier, larger ``backups`` left behind
        for number in range(self.backups - 1, 0, -1):
            older = self.directory / f"{LOG_FILE_NAME}.{number}"
            if older.exists():
                os.replace(older, self.directory / f"{LOG_FILE_NAME}.{number + 1}")
        if self.backups:
            os.replace(self.path, self.directory / f"{LOG_FILE_NAME}.1")
        else:
            self.path.unlink(missing_ok=True)
        self._sync_directory()  # make the renames themselves survive a crash
        self.rotated += 1
        self.open()

    def _sync_directory(self) -> None:
        with contextlib.suppress(OSError):  # not every platform can open a directory
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None
        self._size = 0
