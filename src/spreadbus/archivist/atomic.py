"""Crash-safe file operations: a file appears whole or not at all, and stays after a crash.

The recipe is the classic one: write to a hidden temporary file in the destination folder,
``fsync`` it, ``rename`` it over the final name (atomic on POSIX), then ``fsync`` the folder so
the rename itself survives a power cut. Temporary names start with ``.`` and end with ``.tmp``:
dataset readers ignore them, and :func:`remove_temp_files` sweeps leftovers of a crash.

:func:`exchange_dirs` swaps two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``),
which is how compaction replaces a whole partition without a moment where both the old parts
and the merged file are visible.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from spreadbus.archivist.layout import RESTORE_PREFIX, STAGING_PREFIX, TMP_SUFFIX

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def fsync_dir(path: Path) -> None:
    """Make the entries of ``path`` (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new entries survive a crash (each new level's parent is fsynced)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        fsync_dir(folder.parent)


def temp_path(final: Path) -> Path:
    """A hidden sibling of ``final`` for writing it."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")


def write_atomic(final: Path, write: Callable[[IO[bytes]], None], durable: bool = True) -> int:
    """Create or replace ``final`` atomically with what ``write`` puts into a binary file.

    Returns the size written. With ``durable`` the data and the rename are fsynced.
    """
    make_dirs(final.parent)
    tmp = temp_path(final)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
            size = handle.tell()
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(final.parent)
    return size


def write_bytes_atomic(final: Path, data: bytes) -> int:
    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    return write_atomic(final, write)


def write_parquet_atomic(final: Path, table: pa.Table) -> int:
    """Write ``table`` as a zstd Parquet file that appears atomically; returns its size."""
    return write_atomic(final, lambda handle: pq.write_table(table, handle, **PARQUET_OPTIONS))


def remove_file(path: Path) -> bool:
    """Delete a file and make the deletion durable; ``False`` if it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def exchange_dirs(a: Path, b: Path) -> None:
    """Swap two folders atomically (Linux); elsewhere, or on filesystems without support, fall
    back to two renames (a short moment where ``b`` is absent, never one with both contents).
    Both folders must exist and share a parent."""
    libc_exchange = _renameat2()
    if libc_exchange is not None:
        result = libc_exchange(
            _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
        )
        if result == 0:
            fsync_dir(a.parent)
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(a), None, str(b))
    # Fallback: move b aside under a name recovery restores if the process dies right here.
    aside = b.with_name(RESTORE_PREFIX + b.name)
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
    fsync_dir(a.parent)


def _renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[..., int] = libc.renameat2
    except (OSError, AttributeError):
        return None
    return function


def find_leftovers(root: Path) -> Iterator[Path]:
    """Leftovers of interrupted writes under ``root``: hidden ``*.tmp`` files, compaction
    staging folders and folders an interrupted :func:`exchange_dirs` moved aside (the private
    ``.spool`` folder is not walked)."""
    if not root.is_dir():
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name.startswith((STAGING_PREFIX, RESTORE_PREFIX)):
                        yield Path(entry.path)
                    elif not entry.name.startswith("."):
                        stack.append(Path(entry.path))
                elif entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX):
                    yield Path(entry.path)


def remove_temp_files(root: Path) -> int:
    """Delete what :func:`find_leftovers` finds; returns how many."""
    removed = 0
    for path in list(find_leftovers(root)):
        if path.name.startswith(RESTORE_PREFIX):
            original = path.with_name(path.name.removeprefix(RESTORE_PREFIX))
            if not original.exists():  # died between the two renames: put the old one back
                os.rename(path, original)
                fsync_dir(path.parent)
                removed += 1
                continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed += 1
    return removed
