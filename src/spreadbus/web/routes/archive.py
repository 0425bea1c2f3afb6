"""``/api/archive``: the Parquet files under ``<data-dir>/archive``, listed and downloadable.

Paths go through :func:`spreadbus.archivist.reader.resolve_download`, which refuses anything
that is not a plain visible Parquet file inside the archive folder (``..``, absolute paths,
symbolic links, hidden entries such as the spool); every refusal is a plain 404.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel

from spreadbus.archivist.layout import archive_root
from spreadbus.archivist.reader import ArchiveFile, ArchivePathError, list_files, resolve_download
from spreadbus.web.deps import AppSettings

PARQUET_TYPE: Final = "application/vnd.apache.parquet"

router = APIRouter(tags=["archive"])


class ArchiveEntry(BaseModel):
    path: str  # relative to the archive folder
    url: str
    dataset: str  # ticks | candles | analytics
    symbol: str | None = None  # ticks and candles
    pair: str | None = None  # analytics, as Y/X
    date: str
    size: int
    mtime_ms: int


class ArchiveListing(BaseModel):
    files: list[ArchiveEntry]


def _entry(item: ArchiveFile) -> ArchiveEntry:
    is_pair = item.dataset == "analytics"
    return ArchiveEntry(
        path=item.path,
        url=f"/api/archive/{quote(item.path, safe='/=')}",
        dataset=item.dataset,
        symbol=None if is_pair else item.key,
        pair=item.key if is_pair else None,
        date=item.date,
        size=item.size,
        mtime_ms=item.mtime_ms,
    )


@router.get("/archive", response_model=ArchiveListing)
async def archive_listing(settings: AppSettings) -> ArchiveListing:
    """Every Parquet file of the archive, sorted by path."""
    files = await asyncio.to_thread(list_files, archive_root(settings.data_dir))
    return ArchiveListing(files=[_entry(f) for f in files])


@router.get(
    "/archive/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {PARQUET_TYPE: {}}}, 404: {"description": "no such file"}},
)
async def archive_download(path: str, settings: AppSettings) -> FileResponse:
    """One Parquet file, by the ``path`` the listing gives."""
    root = archive_root(settings.data_dir)
    try:
        found: Path = await asyncio.to_thread(resolve_download, root, path)
    except (ArchivePathError, OSError):  # OSError: not found, a file used as a folder, ...
        raise HTTPException(404, detail="no such archive file") from None
    return FileResponse(found, media_type=PARQUET_TYPE, filename=found.name)
