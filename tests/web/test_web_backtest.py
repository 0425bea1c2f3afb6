"""``/api/backtest`` over the real app: on a dataset and on a live pair (Redis candles joined
with archived candles; 1-second bars from the raw price series), the trades/equity CSV, and
background sweeps with progress and cancellation."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis.asyncio as aioredis

from spreadbus.archivist.layout import date_of_ms
from spreadbus.bus import keys
from spreadbus.research.backtest import BacktestParams, run_backtest
from spreadbus.testing import datafiles

T0 = 1_795_000_020_000 // 60_000 * 60_000  # a minute start on 2026-11-18
MINUTE = 60_000
STRATEGY = {"window": 40, "entry_z": 1.5, "exit_z": 0.2, "fee_bps": 2.0, "slippage_bps": 1.0,
            "capital": 5000.0}  # fmt: skip


def _legs(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return datafiles.cointegrated_cents(n, seed)


def _generic_csv(y: np.ndarray, x: np.ndarray) -> bytes:
    return datafiles.generic_minutes({"YYYUSDT": y, "XXXUSDT": x}, T0)


async def _dataset(api: httpx.AsyncClient, y: np.ndarray, x: np.ndarray) -> str:
    answer = await api.post("/api/datasets", files={"file": ("p.csv", _generic_csv(y, x))})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _params() -> BacktestParams:
    return BacktestParams(bar="1m", **STRATEGY)  # type: ignore[arg-type]


async def test_backtest_on_a_dataset_and_its_csv(api: httpx.AsyncClient) -> None:
    """Same trades as the library run on the bars, and the CSVs hold exactly them."""
    y, x = _legs(600)
    dataset = await _dataset(api, y, x)
    answer = await api.post(
        "/api/backtest", json={"dataset": dataset, "y": "yyyusdt", "x": "XXXUSDT", **STRATEGY}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ts = T0 + MINUTE * np.arange(600)
    expected = run_backtest(ts, y, x, _params())
    assert body["trades"] == expected["trades"]
    assert len(body["trades"]) >= 5
    assert body["stats"]["n_trades"] == len(body["trades"])
    assert body["pair"] == "YYYUSDT/XXXUSDT"
    trades = await api.get(f"/api/backtest/{body['id']}/trades.csv")
    rows = list(csv.DictReader(io.StringIO(trades.text)))
    assert [float(r["pnl"]) for r in rows] == [t["pnl"] for t in body["trades"]]
    assert [int(r["entry_ms"]) for r in rows] == [t["entry_ms"] for t in body["trades"]]
    equity = list(csv.DictReader(io.StringIO((await api.get(
        f"/api/backtest/{body['id']}/equity.csv")).text)))  # fmt: skip
    assert len(equity) == 600
    assert float(equity[-1]["equity"]) == pytest.approx(
        5000.0 + sum(t["pnl"] for t in body["trades"]), abs=1e-6
    )


async def test_backtest_on_a_live_pair_joins_redis_and_archive(
    api: httpx.AsyncClient, aredis: aioredis.Redis, part_writer: Callable[..., Path]
) -> None:
    """Minutes 0-399 archived, 300-599 in Redis (the overlap holds other numbers in the
    archive: Redis wins from its first minute), a 10-hour window: the backtest equals the
    library's on the minutes stitched here."""
    n = 600
    y, x = _legs(n, seed=8)
    ts = T0 + MINUTE * np.arange(n)
    for symbol, leg in (("YYYUSDT", y), ("XXXUSDT", x)):
        archived = leg[:400].copy()
        archived[300:] += 1000.0  # must never be used
        rows = {"ts": ts[:400].tolist(), "close": archived.tolist()}
        for field in ("open", "high", "low", "volume"):
            rows[field] = archived.tolist() if field != "volume" else [1.0] * 400
        part_writer("candles", symbol, date_of_ms(T0), rows)
        key = keys.candle_series(symbol, "close")
        await aredis.execute_command("TS.CREATE", key)  # type: ignore[no-untyped-call]
        samples = [
            a for t, v in zip(ts[300:], leg[300:], strict=True) for a in (key, int(t), float(v))
        ]
        await aredis.execute_command("TS.MADD", *samples)  # type: ignore[no-untyped-call]
    answer = await api.post(
        "/api/backtest", json={"pair": "YYYUSDT/XXXUSDT", "hours": 10, **STRATEGY}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p[0] for p in body["equity"]] == ts.tolist()
    expected = run_backtest(ts, y, x, _params())
    assert body["trades"] == expected["trades"]
    short = await api.post(
        "/api/backtest", json={"pair": "YYYUSDT/XXXUSDT", "hours": 2, **STRATEGY}
    )
    assert [p[0] for p in short.json()["equity"]] == ts[-120:].tolist()


async def test_backtest_on_a_live_pair_at_one_second(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    """1-second bars of a live pair from the raw price series: two trades in most seconds
    (the second's close is the later one), quiet seconds on one leg. The backtest equals the
    library's on closes computed here from the raw trades (last per second, carried over)."""
    n = 600
    y, x = _legs(n, seed=9)
    rng = np.random.default_rng(9)
    closes: dict[str, dict[int, float]] = {}
    for symbol, leg in (("YYYUSDT", y), ("XXXUSDT", x)):
        key = keys.price_series(symbol)
        await aredis.execute_command("TS.CREATE", key, "DUPLICATE_POLICY", "LAST")  # type: ignore[no-untyped-call]
        samples: list[object] = []
        closes[symbol] = {}
        for i in range(n):
            if symbol == "XXXUSDT" and rng.random() < 0.2:
                continue  # a quiet second: the previous close carries over
            second = T0 + i * 1000
            samples += [key, second + 120, float(leg[i]) + 0.5, key, second + 870, float(leg[i])]
            closes[symbol][second] = float(leg[i])
        await aredis.execute_command("TS.MADD", *samples)  # type: ignore[no-untyped-call]
    table = pd.DataFrame(closes).sort_index().ffill().dropna()
    answer = await api.post(
        "/api/backtest", json={"pair": "YYYUSDT/XXXUSDT", "bar": "1s", "hours": 1, **STRATEGY}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [p[0] for p in body["equity"]] == table.index.tolist()
    params = BacktestParams(bar="1s", **STRATEGY)  # type: ignore[arg-type]
    expected = run_backtest(
        table.index.to_numpy(np.int64), table["YYYUSDT"].to_numpy(), table["XXXUSDT"].to_numpy(),
        params,
    )  # fmt: skip
    assert body["trades"] == expected["trades"]
    assert len(body["trades"]) >= 3  # the check has something to compare
    none = await api.post("/api/backtest", json={"pair": "AAAUSDT/BBBUSDT", "bar": "1s"})
    assert none.status_code == 404
    assert "no live prices for AAAUSDT, BBBUSDT" in none.json()["detail"]


async def test_backtest_problems_are_named(api: httpx.AsyncClient) -> None:
    none = await api.post("/api/backtest", json={"pair": "AAAUSDT/BBBUSDT"})
    assert none.status_code == 404
    assert "no 1-minute candles for AAAUSDT, BBBUSDT" in none.json()["detail"]
    both = await api.post("/api/backtest", json={"pair": "AAAUSDT/BBBUSDT", "dataset": "x"})
    assert both.status_code == 422
    unknown = await api.post(
        "/api/backtest", json={"dataset": "0123456789abcdef", "y": "AAAUSDT", "x": "BBBUSDT"}
    )
    assert unknown.status_code == 404
    y, x = _legs(100)
    dataset = await _dataset(api, y, x)
    bad = await api.post(
        "/api/backtest",
        json={"dataset": dataset, "y": "YYYUSDT", "x": "XXXUSDT", "entry_z": 1.0, "exit_z": 2.0},
    )
    assert bad.status_code == 422
    assert "exit_z" in bad.json()["detail"]
    assert (await api.get("/api/backtest/nope/trades.csv")).status_code == 404
    live = {"pair": "AAAUSDT/BBBUSDT"}
    for wrong in ({"window": True}, {"entry_z": "2"}, {"entryz": 2.0}, {"x": ""}):
        refused = await api.post("/api/backtest", json={**live, **wrong})
        assert refused.status_code == 422, wrong  # not read as 1, 2.0, ignored, or dropped
        assert refused.json()["detail"][0]["loc"][-1] == next(iter(wrong)), refused.text
    same = await api.post(
        "/api/backtest", json={"dataset": dataset, "y": "YYYUSDT", "x": "yyyusdt"}
    )
    assert same.status_code == 422
    assert "same symbol on both legs" in same.text
    sweep = await api.post("/api/backtest/sweeps", json={**live, "entry_zs": [False]})
    assert sweep.status_code == 422


async def _poll(
    api: httpx.AsyncClient, sweep_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = (await api.get(f"/api/backtest/sweeps/{sweep_id}")).json()
        if done(body):
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"sweep {sweep_id} did not get there: {body}")


async def test_sweep_fills_the_grid_with_the_backtests_sharpe(api: httpx.AsyncClient) -> None:
    y, x = _legs(400)
    dataset = await _dataset(api, y, x)
    answer = await api.post(
        "/api/backtest/sweeps",
        json={"dataset": dataset, "y": "YYYUSDT", "x": "XXXUSDT", "entry_zs": [0.1, 1.0, 2.0],
              "windows": [20, 60], "exit_z": 0.2},
    )  # fmt: skip
    assert answer.status_code == 202
    assert answer.json()["total"] == 6
    body = await _poll(api, answer.json()["id"], lambda b: b["status"] == "done")
    assert body["done"] == 6
    ts = T0 + MINUTE * np.arange(400)
    for i, window in enumerate((20, 60)):
        assert body["sharpe"][i][0] is None  # entry 0.1 below exit 0.2: no such strategy
        for j, entry in enumerate((1.0, 2.0), start=1):
            params = BacktestParams(window=window, entry_z=entry, exit_z=0.2)
            stats: Any = run_backtest(ts, y, x, params)["stats"]
            assert body["sharpe"][i][j] == stats["sharpe"]


async def test_sweep_can_be_cancelled(api: httpx.AsyncClient) -> None:
    y, x = _legs(3000)
    dataset = await _dataset(api, y, x)
    answer = await api.post(
        "/api/backtest/sweeps",
        json={"dataset": dataset, "y": "YYYUSDT", "x": "XXXUSDT",
              "entry_zs": [1.0 + 0.1 * k for k in range(20)], "windows": [20, 40, 60, 80, 100]},
    )  # fmt: skip
    sweep_id = answer.json()["id"]
    await _poll(api, sweep_id, lambda b: b["done"] >= 1)
    cancelled = await api.delete(f"/api/backtest/sweeps/{sweep_id}")
    assert cancelled.status_code == 200
    body = await _poll(api, sweep_id, lambda b: b["status"] == "cancelled")
    assert 1 <= body["done"] < body["total"] == 100
    await asyncio.sleep(0.3)
    assert (await api.get(f"/api/backtest/sweeps/{sweep_id}")).json()["done"] == body["done"]
    assert (await api.get("/api/backtest/sweeps/unknown")).status_code == 404
