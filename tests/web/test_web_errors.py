"""Redis away: every Redis-backed endpoint answers 503 with a JSON message, no traceback;
archive endpoints keep working (they read files)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from spreadbus.config import Settings
from spreadbus.proc import free_port
from spreadbus.web.api import create_app

from .conftest import BASE

REDIS_PATHS = [
    ("GET", "/api/health"),
    ("GET", "/api/pairs"),
    ("PUT", "/api/pairs"),
    ("GET", "/api/analytics/ETHUSDT-BTCUSDT"),
    ("GET", "/api/analytics/ETHUSDT-BTCUSDT/history"),
    ("GET", "/api/analytics/ETHUSDT-BTCUSDT.csv?metrics=zscore"),
    ("GET", "/api/symbols/BTCUSDT"),
    ("GET", "/api/symbols/BTCUSDT/ohlc"),
    ("GET", "/api/symbols/BTCUSDT/ticks.csv"),
    ("GET", "/api/alerts"),
    ("GET", "/api/alerts/rules"),
    ("PUT", "/api/alerts/rules/r1"),
    ("DELETE", "/api/alerts/rules/r1"),
]
BODIES = {
    "/api/pairs": ["ETHUSDT/BTCUSDT"],
    "/api/alerts/rules/r1": {"metric": "zscore", "op": ">", "threshold": 1},
}


@pytest.mark.parametrize(
    "redis_url_or_none",
    [pytest.param("closed-port", id="redis-down"), pytest.param(None, id="no-redis-configured")],
)
async def test_redis_unavailable_is_503_json(data_dir: Path, redis_url_or_none: str | None) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0" if redis_url_or_none else None
    app = create_app(Settings(redis_url=url, data_dir=data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
            for method, path in REDIS_PATHS:
                body = BODIES.get(path)
                response = await api.request(method, path, json=body)
                assert response.status_code == 503, (method, path, response.text)
                detail = response.json()["detail"]
                assert detail.startswith("Redis unavailable"), detail
                assert "Traceback" not in response.text
                assert "127.0.0.1" not in response.text  # no Redis exception text echoed
                assert "Error" not in response.text
            # bad input is still bad input, whatever Redis does
            assert (await api.get("/api/analytics/NOPE")).status_code == 422
            assert (await api.get("/api/archive")).status_code == 200
    assert app.state.stats.server_errors == len(REDIS_PATHS)


async def test_a_redis_error_reply_is_502_without_redis_text(
    api: httpx.AsyncClient, aredis: aioredis.Redis
) -> None:
    await aredis.set("config:pairs", "not a set")  # SMEMBERS answers WRONGTYPE
    response = await api.get("/api/pairs")
    assert response.status_code == 502
    assert response.json() == {"detail": "Redis refused the request (see the web service's log)"}
    assert "WRONGTYPE" not in response.text
