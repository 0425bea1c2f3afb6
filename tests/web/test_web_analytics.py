"""``/api/analytics/{pair}``: snapshot, history and CSV export, over what the engine writes."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.engine.writer import ensure_pair_series

PAIR = "ETHUSDT/BTCUSDT"
T0 = 1_795_305_480_000  # a minute boundary


def _snapshot(sync_redis: redis.Redis) -> None:
    # as the engine's writer stores floats: repr text; NaN while a window is too short
    sync_redis.hset(
        keys.analytics_state(PAIR),
        mapping={"beta": repr(0.0521), "zscore": repr(-2.25), "adf_pvalue": "nan",
                 "n": "300", "bar_ms": str(T0), "note": "warm"},
    )  # fmt: skip


@pytest.mark.parametrize(
    "path", ["ETHUSDT-BTCUSDT", "ETHUSDT%2FBTCUSDT", "ethusdt-btcusdt", "ETHUSDT/BTCUSDT"]
)
async def test_snapshot_is_typed_json_under_every_spelling_of_the_pair(
    api: httpx.AsyncClient, sync_redis: redis.Redis, path: str
) -> None:
    _snapshot(sync_redis)
    response = await api.get(f"/api/analytics/{path}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "pair": PAIR,
        "fields": {"adf_pvalue": None, "bar_ms": T0, "beta": 0.0521, "n": 300,
                   "note": "warm", "zscore": -2.25},
    }  # fmt: skip


async def test_unknown_pair_is_404_and_a_malformed_one_422(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    _snapshot(sync_redis)
    unknown = await api.get("/api/analytics/SOLUSDT-ETHUSDT")
    assert unknown.status_code == 404
    assert "SOLUSDT/ETHUSDT" in unknown.json()["detail"]
    for bad in ("ETHUSDT", "ETHUSDT-ETHUSDT", "ETH$USDT-BTCUSDT", "A-B-C", "x" * 300):
        response = await api.get(f"/api/analytics/{bad}")
        assert response.status_code == 422, bad
        assert isinstance(response.json()["detail"], str)
    assert (await api.get("/api/analytics/ETHUSDT/history")).status_code == 422
    assert (await api.get("/api/analytics/BAD.csv")).status_code == 422


async def _series(aredis: aioredis.Redis, seconds: int) -> None:
    await ensure_pair_series(aredis, PAIR)
    samples: list[object] = []
    for i in range(seconds):
        ts = T0 + i * 1000
        samples += [keys.analytics_series(PAIR, "zscore"), ts, i / 4]
        samples += [keys.analytics_series(PAIR, "beta"), ts, 0.5 + i / 1000]
    await aredis.execute_command("TS.MADD", *samples)


async def test_history_is_the_window_before_the_newest_sample(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    await _series(aredis, 150)  # 2.5 minutes of 1 s samples, last at T0 + 149 s
    body = (await api.get("/api/analytics/ETHUSDT-BTCUSDT/history?metric=zscore&minutes=1")).json()
    assert body["pair"] == PAIR
    assert body["metric"] == "zscore"
    assert body["resolution"] == "1s"
    assert body["points"] == [[T0 + i * 1000, i / 4] for i in range(90, 150)]

    full = (await api.get("/api/analytics/ETHUSDT%2FBTCUSDT/history?minutes=60")).json()
    assert len(full["points"]) == 150

    # longer windows read the engine's 1-minute averages, the current minute's so far too
    hourly = (await api.get(f"/api/analytics/{PAIR}/history?metric=beta&minutes=120")).json()
    assert hourly["resolution"] == "1m"
    assert [p[0] for p in hourly["points"]] == [T0, T0 + 60_000, T0 + 120_000]
    assert [p[1] for p in hourly["points"]] == pytest.approx(
        [0.5 + 29.5 / 1000, 0.5 + 89.5 / 1000, 0.5 + 134.5 / 1000]
    )
    one_minute = f"/api/analytics/{PAIR}/history?metric=beta&minutes=1&resolution=1m"
    assert [p[0] for p in (await api.get(one_minute)).json()["points"]] == [T0 + 120_000]


async def test_history_errors(api: httpx.AsyncClient, aredis: aioredis.Redis) -> None:
    await _series(aredis, 3)
    base = "/api/analytics/ETHUSDT-BTCUSDT/history"
    assert (await api.get(f"{base}?metric=nosuch")).status_code == 404
    assert (await api.get("/api/analytics/SOLUSDT-ETHUSDT/history")).status_code == 404
    for query in ("metric=Z%20SCORE", "metric=a:b", "minutes=0", "minutes=1441", "minutes=x",
                  "resolution=5s"):  # fmt: skip
        assert (await api.get(f"{base}?{query}")).status_code == 422, query


async def test_csv_export_has_one_column_per_metric(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    await _series(aredis, 5)
    response = await api.get("/api/analytics/ETHUSDT-BTCUSDT.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 5
    assert set(rows[0]) == {
        "ts_ms", "time", "beta", "alpha", "kalman_beta", "kalman_alpha",
        "spread", "zscore", "corr", "adf_pvalue",
    }  # fmt: skip
    assert rows[4]["ts_ms"] == str(T0 + 4000)
    assert rows[4]["time"] == "2026-11-21T23:58:04.000Z"
    assert float(rows[4]["zscore"]) == 1.0
    assert float(rows[4]["beta"]) == 0.504
    assert rows[4]["spread"] == ""  # no samples in that series

    chosen = await api.get("/api/analytics/ETHUSDT%2FBTCUSDT.csv?metrics=zscore")
    assert chosen.text.splitlines()[0] == "ts_ms,time,zscore"
    assert (await api.get("/api/analytics/SOLUSDT-ETHUSDT.csv")).status_code == 404
    for query in ("metrics=,", "metrics=zscore,a%7Db", "minutes=0", "resolution=2s"):
        response = await api.get(f"/api/analytics/ETHUSDT-BTCUSDT.csv?{query}")
        assert response.status_code == 422, query
