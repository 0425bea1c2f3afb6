"""``/api/screener`` over the real app: a dataset universe and the live universe (every
symbol with candles in Redis), p-values against statsmodels ``coint``."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis
from statsmodels.tsa.stattools import coint

from spreadbus.bus import keys

T0 = 1_795_000_020_000 // 60_000 * 60_000
MINUTE = 60_000
NAMES = ("AAAUSDT", "AA1USDT", "BBBUSDT", "CCCUSDT")


def _panel(n: int, seed: int = 21) -> np.ndarray:
    """AAA and AA1 cointegrated, BBB and CCC independent walks; cents."""
    rng = np.random.default_rng(seed)
    walks = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n, 3)), axis=0))
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.8 * s[t - 1] + rng.normal(0, 0.05)
    return np.round(np.column_stack([walks[:, 0], 5 + 0.7 * walks[:, 0] + s,
                                     walks[:, 1], walks[:, 2] * 3]), 2)  # fmt: skip


def _check(rows: list[dict[str, Any]], panel: np.ndarray) -> None:
    """Every pair once; p-values within 1e-6 of statsmodels in both directions."""
    assert len(rows) == 6
    column = {n: k for k, n in enumerate(NAMES)}
    assert {frozenset(r["pair"].split("/")) for r in rows[:1]} == {
        frozenset(("AAAUSDT", "AA1USDT"))
    }
    assert rows[0]["eg_pvalue"] < 0.01
    for row in rows:
        y_name, x_name = row["pair"].split("/")
        y, x = panel[:, column[y_name]], panel[:, column[x_name]]
        assert row["eg_pvalue"] == pytest.approx(coint(y, x, maxlag=1, autolag=None)[1], abs=1e-6)
        assert row["eg_pvalue_reverse"] == pytest.approx(
            coint(x, y, maxlag=1, autolag=None)[1], abs=1e-6
        )
        assert row["n"] == len(panel)
    assert [r["eg_pvalue"] for r in rows] == sorted(r["eg_pvalue"] for r in rows)


async def test_screener_on_a_dataset(api: httpx.AsyncClient) -> None:
    panel = _panel(500)
    lines = ["timestamp,symbol,price"]
    for i in range(len(panel)):
        lines += [f"{T0 + i * MINUTE + k},{n},{panel[i, k]:.2f}" for k, n in enumerate(NAMES)]
    created = await api.post("/api/datasets", files={"file": ("u.csv", "\n".join(lines).encode())})
    answer = await api.post("/api/screener", json={"dataset": created.json()["id"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(body["symbols"]) == sorted(NAMES)
    assert body["bars"] == 500
    _check(body["rows"], panel)
    limited = await api.post("/api/screener", json={"dataset": created.json()["id"], "limit": 2})
    assert len(limited.json()["rows"]) == 2


async def test_screener_on_every_live_symbol(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    panel = _panel(300, seed=5)
    stamps = (T0 + MINUTE * np.arange(300)).tolist()
    for k, name in enumerate(NAMES):
        key = keys.candle_series(name, "close")
        await aredis.execute_command("TS.CREATE", key)  # type: ignore[no-untyped-call]
        samples = [
            a for t, v in zip(stamps, panel[:, k].tolist(), strict=True) for a in (key, t, v)
        ]
        await aredis.execute_command("TS.MADD", *samples)  # type: ignore[no-untyped-call]
    answer = await api.post("/api/screener", json={"symbols": None, "hours": 24})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(body["symbols"]) == sorted(NAMES)
    assert (body["start_ms"], body["end_ms"]) == (stamps[0], stamps[-1])
    _check(body["rows"], panel)


async def test_screener_problems(api: httpx.AsyncClient) -> None:
    missing = await api.post("/api/screener", json={"symbols": ["AAAUSDT", "BBBUSDT"]})
    assert missing.status_code == 404
    assert "no 1-minute candles" in missing.json()["detail"]
    bad = await api.post("/api/screener", json={"symbols": ["AAAUSDT", "no way"]})
    assert bad.status_code == 422
    empty = await api.post("/api/screener", json={"symbols": None})  # no live candles at all
    assert empty.status_code == 404
    assert "no live symbols to screen" in empty.json()["detail"]
    twice = await api.post("/api/screener", json={"symbols": ["btcusdt", "BTCUSDT"]})
    assert twice.status_code == 422  # unique to JSON Schema, one symbol to the screener
    assert "needs 2 symbols, got ['BTCUSDT']" in twice.json()["detail"]
    for typed in ({"symbols": None, "hours": True}, {"symbols": None, "limit": "3"},
                  {"symbols": None, "hour": 24}):  # fmt: skip
        wrong = await api.post("/api/screener", json=typed)
        assert wrong.status_code == 422, typed  # not read as 1 h, 3 rows, or ignored
    unknown = await api.post("/api/screener", json={"dataset": "0123456789abcdef"})
    assert unknown.status_code == 404
