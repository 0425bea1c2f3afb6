"""``/api/downloads``: ticks, bars and analytics history of any size, streamed.

Ticks join the Parquet archive and the live stream with every tick once (see
:mod:`spreadbus.research.downloads`). CSV streams as it is produced; Parquet is written to a
temporary file row group by row group (memory stays flat), sent, then removed.

A range is ``[start_ms, end_ms)``: ``end_ms == start_ms`` is an empty range and gets a valid
empty file (the header alone), at once. ``end_ms`` before ``start_ms`` (most likely swapped
dates) or more than 366 days is a 422 naming the problem: a rule between two parameters,
which OpenAPI cannot state, so the 422 is documented in words (``tests/web/schemathesis.toml``
names it too).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from spreadbus.archivist.layout import archive_root
from spreadbus.research import downloads as dl
from spreadbus.web.deps import AppSettings, Client
from spreadbus.web.export import MEDIA_TYPE as CSV_TYPE
from spreadbus.web.names import pair_from_path, symbol_from_path
from spreadbus.web.routes.archive import PARQUET_TYPE
from spreadbus.web.routes.responses import unprocessable

MAX_SPAN_MS: Final = 366 * 86_400_000
Format = Literal["csv", "parquet"]
Start = Annotated[int, Query(ge=0, description="epoch ms, inclusive")]
End = Annotated[int, Query(ge=0, description="epoch ms, exclusive")]

router = APIRouter(tags=["downloads"])
# what the handlers send: CSV (the default) or Parquet, as ``format`` asks
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, PARQUET_TYPE: {}}, "description": "The file"},
    **unprocessable("end_ms is before start_ms, or the range is longer than 366 days"),
}


def _span(start_ms: int, end_ms: int) -> None:
    if end_ms < start_ms:
        raise HTTPException(
            422, detail=f"end_ms ({end_ms}) is before start_ms ({start_ms}): swapped?"
        )
    if end_ms - start_ms > MAX_SPAN_MS:
        raise HTTPException(422, detail="at most 366 days per download")


async def _nothing() -> AsyncIterator[list[Any]]:
    """The chunks of an empty range: none."""
    empty: tuple[list[Any], ...] = ()
    for chunk in empty:
        yield chunk


def _ranged(
    start_ms: int, end_ms: int, chunks: Callable[[], AsyncIterator[list[Any]]]
) -> AsyncIterator[list[Any]]:
    """``chunks()`` for a range checked by :func:`_span`; no reads at all for an empty one."""
    _span(start_ms, end_ms)
    return chunks() if end_ms > start_ms else _nothing()


async def _send(
    settings: Any,
    fmt: Format,
    name: str,
    header: tuple[str, ...],
    schema: pa.Schema,
    chunks: AsyncIterator[list[Any]],
) -> StreamingResponse | FileResponse:
    if fmt == "csv":
        return StreamingResponse(
            dl.csv_bytes(header, chunks),
            media_type=CSV_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    folder = Path(settings.data_dir) / ".downloads"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    handle, raw = tempfile.mkstemp(suffix=".parquet", dir=folder)
    os.close(handle)
    path = Path(raw)
    try:
        await dl.write_parquet(path, schema, chunks)
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    return FileResponse(
        path,
        media_type=PARQUET_TYPE,
        filename=f"{name}.parquet",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get("/downloads/ticks", response_model=None, responses=FILE_RESPONSES)
async def download_ticks(
    client: Client,
    settings: AppSettings,
    symbol: str,
    start_ms: Start,
    end_ms: End,
    fmt: Annotated[Format, Query(alias="format")] = "csv",
) -> StreamingResponse | FileResponse:
    """A symbol's real ticks with ``start_ms <= trade_ts < end_ms``, archive and live stream
    joined (each tick once), prices and quantities in the exchange's decimal text."""
    name = symbol_from_path(symbol)
    archive = archive_root(settings.data_dir)
    chunks = _ranged(
        start_ms, end_ms, lambda: dl.tick_chunks(client, archive, name, start_ms, end_ms)
    )
    return await _send(
        settings, fmt, f"ticks_{name}_{start_ms}_{end_ms}", dl.TICK_COLUMNS, dl.TICK_SCHEMA, chunks
    )


@router.get("/downloads/bars", response_model=None, responses=FILE_RESPONSES)
async def download_bars(
    client: Client,
    settings: AppSettings,
    symbol: str,
    start_ms: Start,
    end_ms: End,
    bar: Literal["1s", "1m", "5m", "1h"] = "1m",
    fmt: Annotated[Format, Query(alias="format")] = "csv",
) -> StreamingResponse | FileResponse:
    """OHLCV bars made from the same ticks (start-labelled; a quiet bar repeats the last close
    with no volume)."""
    name = symbol_from_path(symbol)
    archive = archive_root(settings.data_dir)
    ticks = _ranged(
        start_ms, end_ms, lambda: dl.tick_chunks(client, archive, name, start_ms, end_ms)
    )
    return await _send(
        settings,
        fmt,
        f"bars_{name}_{bar}_{start_ms}_{end_ms}",
        dl.BAR_COLUMNS,
        dl.BAR_SCHEMA,
        dl.bar_chunks(ticks, bar),
    )


@router.get("/downloads/analytics", response_model=None, responses=FILE_RESPONSES)
async def download_analytics(
    client: Client,
    settings: AppSettings,
    pair: str,
    start_ms: Start,
    end_ms: End,
    fmt: Annotated[Format, Query(alias="format")] = "csv",
) -> StreamingResponse | FileResponse:
    """A pair's 1-second analytics history (archive, then Redis)."""
    name = pair_from_path(pair)
    archive = archive_root(settings.data_dir)
    chunks = _ranged(
        start_ms, end_ms, lambda: dl.analytics_chunks(client, archive, name, start_ms, end_ms)
    )
    safe = name.replace("/", "-")
    return await _send(
        settings,
        fmt,
        f"analytics_{safe}_{start_ms}_{end_ms}",
        dl.ANALYTICS_COLUMNS,
        dl.ANALYTICS_SCHEMA,
        chunks,
    )
