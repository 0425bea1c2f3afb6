"""``/api/archive``: the listing, downloads of real Parquet files, and every way out of the
archive folder refused with a plain 404."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from .conftest import RawGet

DAY = "2026-11-21"
T = datetime(2026, 11, 21, 23, 58, tzinfo=UTC)


@pytest.fixture
def parts(part_writer: Callable[..., Path]) -> dict[str, Path]:
    candles = part_writer(
        "candles", "BTCUSDT", DAY,
        {"ts": [T], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [3.0]},
    )  # fmt: skip
    analytics = part_writer(
        "analytics", "ETHUSDT/BTCUSDT", DAY,
        {"ts": [T], "beta": [0.05], "spread": [1.0], "zscore": [2.0], "corr": [0.9],
         "adf_pvalue": [0.01]},
    )  # fmt: skip
    return {"candles": candles, "analytics": analytics}


async def test_listing_names_dataset_key_date_and_size(
    api: httpx.AsyncClient, parts: dict[str, Path], archive: Path
) -> None:
    # things that must never be listed: the spool, temporary files, a link
    (archive / ".spool").mkdir()
    (archive / ".spool" / "segment.parquet").write_bytes(b"private")
    (parts["candles"].parent / ".part-0000000002.parquet.tmp").write_bytes(b"half")
    os.symlink(parts["candles"], parts["candles"].parent / "part-0000000003.parquet")

    response = await api.get("/api/archive")
    assert response.status_code == 200
    files = response.json()["files"]
    assert [f["path"] for f in files] == [
        "analytics/pair=ETHUSDT-BTCUSDT/date=2026-11-21/part-0000000001.parquet",
        "candles/symbol=BTCUSDT/date=2026-11-21/part-0000000001.parquet",
    ]
    analytics, candles = files
    assert analytics["dataset"] == "analytics"
    assert analytics["pair"] == "ETHUSDT/BTCUSDT"
    assert analytics["symbol"] is None
    assert candles["symbol"] == "BTCUSDT"
    assert candles["pair"] is None
    assert candles["date"] == DAY
    assert candles["size"] == parts["candles"].stat().st_size
    assert candles["url"] == "/api/archive/" + candles["path"]


async def test_empty_archive_lists_nothing(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/archive")).json() == {"files": []}


async def test_download_is_the_file_and_readable_parquet(
    api: httpx.AsyncClient, parts: dict[str, Path]
) -> None:
    listing = (await api.get("/api/archive")).json()["files"]
    for entry in listing:
        response = await api.get(entry["url"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.apache.parquet"
        assert "part-0000000001.parquet" in response.headers["content-disposition"]
        assert response.content == parts[entry["dataset"]].read_bytes()
    frame: pd.DataFrame = pq.read_table(io.BytesIO(response.content)).to_pandas()
    assert frame["close"].tolist() == [1.5]


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/etc/passwd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "candles/%2e%2e/%2e%2e/%2e%2e/secret.parquet",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "..%5c..%5csecret.parquet",
        ".spool/segment.parquet",
        "candles/symbol=BTCUSDT/date=2026-11-21/.part-0000000002.parquet",
        "candles/symbol=BTCUSDT/date=2026-11-21/part-0000000009.parquet",
        "candles/symbol=BTCUSDT/date=2026-11-21",
        "candles/symbol=BTCUSDT/date=2026-11-21/part-0000000001.parquet/x.parquet",
        "candles/symbol=BTCUSDT/date=2026-11-21/part-0000000001.parquet%00.txt",
        "link/secret.parquet",
        "outside.parquet",
        "x" * 5000 + ".parquet",
    ],
)
async def test_anything_but_an_archive_file_is_404(
    api: httpx.AsyncClient, parts: dict[str, Path], archive: Path, tmp_path: Path, path: str
) -> None:
    secret = tmp_path / "secret.parquet"
    secret.write_bytes(b"SECRET")
    (archive / ".spool").mkdir()
    (archive / ".spool" / "segment.parquet").write_bytes(b"SECRET")
    (parts["candles"].parent / ".part-0000000002.parquet").write_bytes(b"SECRET")
    os.symlink(tmp_path, archive / "link")
    os.symlink(secret, archive / "outside.parquet")

    response = await api.get(f"/api/archive/{path}")
    assert response.status_code == 404, path
    assert b"SECRET" not in response.content
    assert response.json() == {"detail": "no such archive file"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/archive/../../etc/passwd",
        "/api/archive/candles/../../../secret.parquet",
        "/api/archive/./candles/symbol=BTCUSDT/date=2026-11-21/part-0000000001.parquet",
        "/api/archive//etc/passwd",
        "/api/archive/candles/symbol=BTCUSDT/date=2026-11-21/link.parquet",
    ],
)
async def test_dot_segments_clients_would_normalise_are_404_too(
    raw_get: RawGet, parts: dict[str, Path], tmp_path: Path, path: str
) -> None:
    secret = tmp_path / "secret.parquet"
    secret.write_bytes(b"SECRET")
    os.symlink(secret, parts["candles"].parent / "link.parquet")
    response = await raw_get(path)
    assert response.status_code == 404, path
    assert b"SECRET" not in response.content


async def test_a_symlinked_partition_folder_is_refused(
    api: httpx.AsyncClient, parts: dict[str, Path], archive: Path
) -> None:
    real = parts["candles"].parent
    os.symlink(real, real.parent / "date=2026-11-22")
    linked = "candles/symbol=BTCUSDT/date=2026-11-22/part-0000000001.parquet"
    assert (await api.get(f"/api/archive/{linked}")).status_code == 404
    assert linked not in [f["path"] for f in (await api.get("/api/archive")).json()["files"]]
