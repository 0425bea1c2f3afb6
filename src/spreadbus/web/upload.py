"""A multipart upload streamed straight to a file, with a size limit: never held in memory,
never written past the limit.

``python-multipart``'s push parser is fed the request body as it arrives; the bytes of the
one wanted field go to the file. A ``Content-Length`` already above the limit is refused
before a byte is read; otherwise counting stops the upload at the first byte past it.

Uploads work in temporary folders of the datasets folder (``.upload-*`` here, ``.incoming-*``
in :func:`spreadbus.research.datasets.ingest`); a request removes its own whatever happens,
but a killed process cannot. :func:`claim_upload_space` removes the ones left behind when the
web starts, and only those: every web process holds a shared ``flock`` on
``<datasets>/.web-lock`` for its whole life (the kernel drops it when the process dies,
``kill -9`` included), so a web that can take that lock *exclusively* knows no live process has
an upload in flight there. When another web holds it, nothing is removed.
"""

from __future__ import annotations

import fcntl
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from fastapi import HTTPException, Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MULTIPART_SLACK: Final = 64 * 1024  # boundaries and part headers around the file's bytes
LOCK_NAME: Final = ".web-lock"
TEMP_PREFIXES: Final = (".upload-", ".incoming-")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


class UploadTooLargeError(Exception):
    """The file is larger than the limit."""


@dataclass
class Received:
    path: Path  # where the file's bytes are
    filename: str  # the client's file name, made safe for a path
    size: int


def safe_filename(name: str) -> str:
    """The last path component, with anything but letters, digits, ``._-`` replaced by ``_``
    (a data-vision name such as ``BTCUSDT-aggTrades-2026-11-21.csv.zip`` stays as it is)."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[:200]
    return cleaned or "upload"


@dataclass
class UploadSpace:
    """This process's shared claim on a datasets folder; ``stale`` names the temporary folders
    removed when it was taken (``None``: another live web shares the folder, none removed)."""

    lock: IO[bytes]
    stale: list[str] | None

    def release(self) -> None:
        self.lock.close()  # closing the file drops the flock


def claim_upload_space(root: Path) -> UploadSpace:
    """Take this process's shared claim on ``root`` (made if missing), first removing the
    temporary upload folders of dead processes when no live web holds a claim (module
    docstring). Blocking only while another web is between its exclusive and shared claim."""
    root.mkdir(parents=True, exist_ok=True)
    lock = (root / LOCK_NAME).open("ab")
    stale: list[str] | None = None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another live web: its folders may be in use
    else:
        stale = sorted(p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIXES))
        for name in stale:
            shutil.rmtree(root / name, ignore_errors=True)
    fcntl.flock(lock, fcntl.LOCK_SH)
    return UploadSpace(lock, stale)


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, detail=f"file too large: the upload limit is {limit:,} bytes (upload_max_bytes)"
    )


async def receive_file(request: Request, folder: Path, field: str, limit: int) -> Received:
    """Stream the multipart field ``field`` of ``request`` into ``folder``; 413 past ``limit``,
    422 when the body is not multipart or has no such field."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPException(422, detail=f"expected multipart/form-data with a field {field!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise too_large(limit)

    sink = _FieldSink(folder, field.encode(), limit)
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        async for piece in request.stream():
            parser.write(piece)
        parser.finalize()
    except UploadTooLargeError:
        raise too_large(limit) from None
    except Exception as exc:  # python-multipart's parse errors: a malformed body
        raise HTTPException(422, detail=f"malformed multipart body: {exc}") from None
    finally:
        sink.close()
    if sink.received is None:
        raise HTTPException(422, detail=f"multipart field {field!r} is missing")
    sink.received.size = sink.written
    return sink.received


class _FieldSink:
    """python-multipart callbacks writing the bytes of one field's first part to a file."""

    def __init__(self, folder: Path, field: bytes, limit: int) -> None:
        self._folder = folder
        self._field = field
        self._limit = limit
        self._header = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._out: IO[bytes] | None = None
        self.received: Received | None = None
        self.written = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self.close,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header = self._value = b""

    def _headers_finished(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition.get(b"name") == self._field and self.received is None:
            name = safe_filename(disposition.get(b"filename", b"upload").decode(errors="replace"))
            path = self._folder / name
            self._out = path.open("wb")
            self.received = Received(path, name, 0)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is None:
            return
        self.written += end - start
        if self.written > self._limit:
            raise UploadTooLargeError
        self._out.write(data[start:end])

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
