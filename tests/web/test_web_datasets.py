"""``/api/datasets`` over the real app: uploads of every format, every bad file with its own
message and nothing left behind, the size limit (declared or not), analytics of a dataset
against statsmodels on bars built here from the raw rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import redis.asyncio as aioredis
import statsmodels.api as sm
from statsmodels.tsa.stattools import coint

from spreadbus.analytics.carry import CARRY_FIELDS
from spreadbus.config import Settings
from spreadbus.engine.pairstate import STATISTIC_FIELDS
from spreadbus.testing import datafiles
from spreadbus.web.api import create_app

BASE = "http://127.0.0.1:8050"
AGG_NAME = "BTCUSDT-aggTrades-2026-11-18.csv"


async def _upload(api: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    return await api.post("/api/datasets", files={"file": (name, data, "text/csv")})


def _leftovers(data_dir: Path) -> list[str]:
    root = data_dir / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


GOOD = [
    (AGG_NAME + ".zip", lambda: _zip(AGG_NAME, datafiles.agg_trades("BTCUSDT", 400)), "aggTrades"),
    ("ETHUSDT-trades-2026-11-18.csv", lambda: datafiles.trades("ETHUSDT", 300, header=False),
     "trades"),
    ("SOLUSDT-1m-2026-11-18.csv", lambda: datafiles.klines_1m("SOLUSDT", 120), "klines_1m"),
    ("mine.csv", lambda: datafiles.generic(("AAAUSDT", "BBBUSDT"), 100, iso=True), "generic"),
]  # fmt: skip


def _zip(name: str, built: tuple[bytes, datafiles.Rows]) -> tuple[bytes, datafiles.Rows]:
    return datafiles.zipped(name, built[0]), built[1]


@pytest.mark.parametrize(("name", "build", "kind"), GOOD, ids=[g[2] for g in GOOD])
async def test_upload_each_format_then_list_and_delete(
    api: httpx.AsyncClient, data_dir: Path, name: str, build: object, kind: str
) -> None:
    data, rows = build()  # type: ignore[operator]
    answer = await _upload(api, name, data)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["rows"] == len(rows)
    assert body["kind"] == kind
    assert body["symbols"] == sorted({r[1] for r in rows})
    assert (body["start_ms"], body["end_ms"]) == (rows[0][0], rows[-1][0])
    listed = (await api.get("/api/datasets")).json()["datasets"]
    assert [d["id"] for d in listed] == [body["id"]]
    assert _leftovers(data_dir) == [body["id"]]  # no upload or incoming folder remains
    assert (await api.delete(f"/api/datasets/{body['id']}")).status_code == 204
    assert (await api.get(f"/api/datasets/{body['id']}")).status_code == 404
    assert (await api.get("/api/datasets")).json()["datasets"] == []


AGG, _ = datafiles.agg_trades("BTCUSDT", 30)
BAD_PRICE = AGG.replace(b",100.", b",1o0.", 2)
BAD = [
    ("truncated", AGG_NAME + ".zip", datafiles.zipped(AGG_NAME, AGG)[:150],
     "truncated or damaged zip", None, None),
    ("wrong columns", "x.csv", b"when,what,how much\n1,2,3\n", "unrecognised columns", 1, None),
    ("non-numeric price", AGG_NAME, BAD_PRICE, "'1o0.", 2, "price"),
    ("no time zone", "g.csv", b"timestamp,symbol,price\n2026-11-18T10:00:00,BTCUSDT,1.5\n",
     "has no time zone", 2, "timestamp"),
    ("zip of something else", "d.zip", datafiles.zipped("notes.txt", b"x\n"),
     "holds 'notes.txt', not a CSV", None, None),
    ("empty", "empty.csv", b"", "is empty", None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "data", "message", "line", "column"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
async def test_bad_file_names_its_problem(
    api: httpx.AsyncClient,
    data_dir: Path,
    name: str,
    data: bytes,
    message: str,
    line: int | None,
    column: object,
) -> None:
    answer = await _upload(api, name, data)
    assert answer.status_code == 422
    body = answer.json()
    assert message in body["detail"]
    assert "Traceback" not in body["detail"]
    assert (body["line"], body["column"]) == (line, column)
    assert _leftovers(data_dir) == []
    assert (await api.get("/api/datasets")).json()["datasets"] == []


async def test_bad_files_each_get_their_own_message(api: httpx.AsyncClient) -> None:
    details = {(await _upload(api, name, data)).json()["detail"] for _, name, data, *_ in BAD}
    assert len(details) == len(BAD)


@pytest.fixture
async def small_api(settings: Settings, aredis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"upload_max_bytes": 20_000}), aredis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def _multipart(name: str, data: bytes, boundary: str = "xYzBoUnDaRy") -> tuple[bytes, str]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


async def test_over_the_limit_is_413_declared_or_streamed(
    small_api: httpx.AsyncClient, data_dir: Path
) -> None:
    """Declared Content-Length: refused before reading; chunked (no length): refused at the
    first byte past the limit. A file just under the limit passes."""
    big, _ = datafiles.agg_trades("BTCUSDT", 2000)
    assert len(big) > 20_000
    answer = await _upload(small_api, AGG_NAME, big)
    assert answer.status_code == 413
    assert "upload limit is 20,000 bytes" in answer.json()["detail"]
    body, boundary = _multipart(AGG_NAME, big)

    async def pieces() -> AsyncIterator[bytes]:
        for k in range(0, len(body), 4096):
            yield body[k : k + 4096]

    streamed = await small_api.post(
        "/api/datasets",
        content=pieces(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    assert "upload limit" in streamed.json()["detail"]
    assert _leftovers(data_dir) == []
    small, _ = datafiles.agg_trades("BTCUSDT", 200)
    assert len(small) < 20_000
    assert (await _upload(small_api, AGG_NAME, small)).status_code == 201


async def test_not_multipart_or_no_file_field(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/datasets", content=b"a,b\n", headers={"content-type": "text/csv"})
    assert answer.status_code == 422
    assert "multipart/form-data" in answer.json()["detail"]
    answer = await api.post("/api/datasets", files={"other": ("a.csv", b"x", "text/csv")})
    assert answer.status_code == 422
    assert "field 'file' is missing" in answer.json()["detail"]


@pytest.mark.parametrize("hedge", ["ols", "huber", "kalman", "theil_sen"])
async def test_dataset_analytics_against_statsmodels(api: httpx.AsyncClient, hedge: str) -> None:
    """Bars built here from the raw rows (last price per second); OLS beta relative 1e-9,
    Engle-Granger p-value (one lag) within 1e-9."""
    data, rows = datafiles.generic(("AAAUSDT", "BBBUSDT"), 400)
    created = (await _upload(api, "pair.csv", data)).json()
    answer = await api.get(
        f"/api/datasets/{created['id']}/analytics",
        params={"y": "aaausdt", "x": "BBBUSDT", "bar": "1s", "hedge": hedge},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["pair"] == "AAAUSDT/BBBUSDT"
    fields = body["fields"]
    assert set(STATISTIC_FIELDS) - set(CARRY_FIELDS) <= set(fields)  # funding: live only
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "price", "qty"])
    closes = frame.pivot_table(index=frame.ts // 1000, columns="symbol", values="price",
                               aggfunc="last")  # fmt: skip
    y, x = closes["AAAUSDT"].to_numpy(), closes["BBBUSDT"].to_numpy()
    if hedge == "ols":
        fit = sm.OLS(y, sm.add_constant(x)).fit()
        assert fields["beta"] == pytest.approx(fit.params[1], rel=1e-9)
    assert fields["eg_pvalue"] == pytest.approx(coint(y, x, maxlag=1, autolag=None)[1], abs=1e-9)
    assert fields["n"] == len(y) == 400
    assert fields["last_price_y"] == y[-1]
    assert len(body["johansen"]["trace_stat"]) == 2
    assert np.isfinite(body["johansen"]["eigenvalues"]).all()


async def test_dataset_analytics_problems(api: httpx.AsyncClient) -> None:
    data, _ = datafiles.generic(("AAAUSDT", "BBBUSDT"), 50)
    created = (await _upload(api, "pair.csv", data)).json()
    url = f"/api/datasets/{created['id']}/analytics"
    missing = await api.get(url, params={"y": "AAAUSDT", "x": "ZZZUSDT"})
    assert missing.status_code == 422
    assert "has no ZZZUSDT" in missing.json()["detail"]
    few = await api.get(url, params={"y": "AAAUSDT", "x": "BBBUSDT", "bar": "1m"})
    assert few.status_code == 422
    assert "too few bars" in few.json()["detail"]
    unknown = await api.get("/api/datasets/0123456789abcdef/analytics?y=AAAUSDT&x=BBBUSDT")
    assert unknown.status_code == 404
    escape = await api.get("/api/datasets/..%2F..%2Fetc/analytics?y=AAAUSDT&x=BBBUSDT")
    assert escape.status_code == 404
