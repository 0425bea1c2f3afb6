"""``/api/health``, the OpenAPI document, the docs page and the index page."""

from __future__ import annotations

import time

import httpx
import orjson
import redis

from spreadbus.bus import keys
from spreadbus.web.routes.health import service_health


def _beat(sync_redis: redis.Redis, service: str, age_s: float, **extra: object) -> None:
    now_ms = int(time.time() * 1000)
    sync_redis.hset(
        keys.health(service),
        mapping={
            "service": service, "pid": 4242, "started_ms": now_ms - 60_000,
            "last_beat_ms": now_ms - int(age_s * 1000), "interval_s": 0.5, "status": "running",
            "counters": orjson.dumps({"ticks": 7, **extra}).decode(), **extra,
        },
    )  # fmt: skip


async def test_health_reports_each_service_and_the_simulated_source(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    _beat(sync_redis, "gateway", 0.1, source="sim (fallback: binance unreachable)")
    _beat(sync_redis, "engine", 0.2)
    _beat(sync_redis, "logger", 60.0)  # 3 beats of 0.5 s, at least 5 s: long stale

    response = await api.get("/api/health")

    assert response.status_code == 200
    body = response.json()
    services = body["services"]
    assert set(services) == {"gateway", "engine", "logger", "archivist", "web"}
    assert services["gateway"]["status"] == "healthy"
    assert services["gateway"]["pid"] == 4242
    assert services["gateway"]["counters"]["ticks"] == 7
    assert services["engine"]["status"] == "healthy"
    assert services["logger"]["status"] == "stale"
    assert services["logger"]["age_s"] >= 59
    assert services["archivist"] == {
        "status": "down", "state": "failing", "reason": "not running (no heartbeat)",
        "age_s": None, "pid": None, "started_ms": None, "last_beat_ms": None, "fields": {},
        "counters": {},
    }  # fmt: skip
    assert services["gateway"]["state"] == "running" and services["gateway"]["reason"] == ""
    assert services["logger"]["state"] == "failing"
    assert services["logger"]["reason"].startswith("no heartbeat for")
    assert body["source"] == "sim (fallback: binance unreachable)"
    assert body["simulated"] is True
    assert body["healthy"] is False


async def test_health_live_source_is_not_simulated(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    _beat(sync_redis, "gateway", 0.0, source="binance")
    body = (await api.get("/api/health")).json()
    assert body["source"] == "binance"
    assert body["simulated"] is False
    sync_redis.delete(keys.health("gateway"))
    body = (await api.get("/api/health")).json()
    assert body["source"] is None
    assert body["simulated"] is False


async def test_health_shows_the_state_and_reason_a_service_reports(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    for name in ("gateway", "engine", "logger", "archivist", "web"):
        _beat(sync_redis, name, 0.1)
    assert (await api.get("/api/health")).json()["healthy"] is True
    sync_redis.hset(
        keys.health("gateway"), mapping={"status": "failing", "reason": "flusher died: boom"}
    )
    sync_redis.hset(keys.health("archivist"), mapping={"status": "degraded", "reason": "disk full"})
    body = (await api.get("/api/health")).json()
    gateway, archivist = body["services"]["gateway"], body["services"]["archivist"]
    assert (gateway["status"], gateway["state"]) == ("healthy", "failing")
    assert gateway["reason"] == "flusher died: boom"
    assert (archivist["state"], archivist["reason"]) == ("degraded", "disk full")
    assert body["services"]["engine"]["state"] == "running"
    assert body["healthy"] is False


def test_a_mangled_heartbeat_is_stale_not_an_error() -> None:
    assert service_health({b"pid": b"1"}, time.time()).status == "stale"
    assert service_health({}, time.time()).status == "down"


async def test_openapi_document_lists_the_contract_endpoints(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/health", "/api/pairs", "/api/analytics/{pair}", "/api/analytics/{pair}.csv",
        "/api/analytics/{pair}/history", "/api/symbols/{symbol}", "/api/symbols/{symbol}/ohlc",
        "/api/symbols/{symbol}/ticks.csv", "/api/alerts", "/api/alerts/rules",
        "/api/alerts/rules/{rule_id}", "/api/archive", "/api/archive/{path}",
    ):  # fmt: skip
        assert path in paths, path
    assert set(paths["/api/pairs"]) == {"get", "put"}
    assert set(paths["/api/alerts/rules/{rule_id}"]) == {"put", "delete"}


async def test_docs_and_index_pages(api: httpx.AsyncClient) -> None:
    docs = await api.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
    index = await api.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert "<title>spreadbus</title>" in index.text  # the dashboard's page
    assert "DashRenderer" in index.text
    for page in ("/alerts", "/system", "/pair/ETHUSDT-BTCUSDT", "/data"):
        response = await api.get(page)
        assert response.status_code == 200, page
        assert "DashRenderer" in response.text, page
    missing = await api.get("/api/no-such-thing")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}  # JSON, not the dashboard's page
