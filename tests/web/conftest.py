"""Fixtures of the web API tests: the app over the suite's real Redis, an HTTP client
against it in this event loop, raw ASGI requests (paths no HTTP client would send), and
real Parquet files in the archive layout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from spreadbus.archivist.convert import SCHEMAS
from spreadbus.archivist.layout import Dataset, archive_root, part_name, partition_dir
from spreadbus.archivist.writer import write_part_file
from spreadbus.config import Settings
from spreadbus.web.api import create_app

BASE = "http://127.0.0.1:8050"  # a Host the web answers to (web.origin)


@pytest.fixture
def app(settings: Settings, aredis: aioredis.Redis) -> FastAPI:
    return create_app(settings, aredis)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


@dataclass
class RawResponse:
    status_code: int
    content: bytes


RawGet = Callable[[str], Awaitable[RawResponse]]


@pytest.fixture
def raw_get(app: FastAPI) -> RawGet:
    """GET with ``path`` exactly as a server would hand it to the app (already decoded), so
    ``..`` segments reach the router: HTTP clients normalise them away."""

    async def get(path: str) -> RawResponse:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": [(b"host", b"127.0.0.1:8050")],
            "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
        }  # fmt: skip
        await app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return RawResponse(int(status), body)

    return get


@pytest.fixture
def archive(data_dir: Path) -> Path:
    return archive_root(data_dir)


def write_part(
    archive: Path, dataset: Dataset, key: str, date: str, rows: dict[str, list[object]]
) -> Path:
    """One part file where the Archivist would put it, with the Archivist's schema."""
    schema = SCHEMAS[dataset]
    table = pa.table({name: rows[name] for name in schema.names}, schema=schema)
    path = partition_dir(archive, dataset, key, date) / part_name(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_part_file(path, dataset, key, date, table)
    return path


@pytest.fixture
def part_writer(archive: Path) -> Callable[..., Path]:
    def write(dataset: Dataset, key: str, date: str, rows: dict[str, list[object]]) -> Path:
        return write_part(archive, dataset, key, date, rows)

    return write
