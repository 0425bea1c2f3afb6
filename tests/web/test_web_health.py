"""``/api/health``, the OpenAPI document, the docs page and the index page."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import redis
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.lease import ShareGroup, owner_id
from spreadbus.web.routes.health import service_health


def _beat(sync_redis: redis.Redis, service: str, age_s: float, **extra: str | int) -> None:
    now_ms = int(time.time() * 1000)
    beat: dict[Any, Any] = {
        "service": service, "pid": 4242, "started_ms": now_ms - 60_000,
        "last_beat_ms": now_ms - int(age_s * 1000), "interval_s": 0.5, "status": "running",
        "counters": orjson.dumps({"ticks": 7, **extra}).decode(), **extra,
    }  # fmt: skip
    sync_redis.hset(keys.health(service), mapping=beat)


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
        "counters": {}, "shares": None,
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


async def test_health_lists_each_share_process_with_its_shares(
    api: httpx.AsyncClient, sync_redis: redis.Redis, aredis: aioredis.Redis
) -> None:
    """Two engine processes split two shares through real leases; a third process (started by
    hand as ``engine-x``) dies without a word. Each is listed under its own name with its own
    state and the shares its leases say it holds; a share nobody holds makes the whole
    unhealthy until someone takes it."""
    ttl_s = 30.0  # nothing expires by itself under a loaded machine's delays
    for name in ("gateway", "engine", "engine-2", "engine-x", "logger", "archivist", "web"):
        _beat(sync_redis, name, 0.1)
    groups = {
        name: ShareGroup(aredis, "engine", 3, owner=owner_id(name), ttl_s=ttl_s)
        for name in ("engine", "engine-2", "engine-x")
    }
    for group in groups.values():
        await group.step()
    for group in groups.values():  # all three are members now: one share each
        await group.release((await group.step()).surplus)
    held = {name: sorted(g.held) for name, g in groups.items()}
    assert sorted(s for shares in held.values() for s in shares) == [0, 1, 2], held

    body = (await api.get("/api/health")).json()
    services = body["services"]
    assert set(services) == {"gateway", "engine", "engine-2", "engine-x", "logger",
                             "archivist", "web"}  # fmt: skip
    for name, shares in held.items():
        assert services[name]["shares"] == shares, name
        assert services[name]["state"] == "running"
    assert services["logger"]["shares"] is None  # not a share group's process
    assert body["groups"]["engine"] == {
        "shares": 3, "held": {str(s): n for n, ss in held.items() for s in ss}, "unheld": [],
    }  # fmt: skip
    assert body["healthy"] is True

    # engine-x dies: its heartbeat ages, its lease runs out, nobody has taken its share yet
    # (its lease and membership lapse here as they would after the TTL: a loaded machine
    # must not make the survivors' lapse too)
    await aredis.delete(keys.lease("engine", held["engine-x"][0]))
    gone = {groups["engine-x"].owner: time.time() * 1000 - 1}
    await aredis.zadd(keys.lease_members("engine"), gone, xx=True)
    _beat(sync_redis, "engine-x", 60.0)
    body = (await api.get("/api/health")).json()
    dead = body["services"]["engine-x"]
    assert (dead["status"], dead["state"], dead["shares"]) == ("stale", "failing", [])
    assert body["groups"]["engine"]["unheld"] == held["engine-x"]
    assert body["healthy"] is False
    # a survivor takes the share: it is served again, the dead process still shows (stale)
    survivor = groups["engine"]
    await survivor.step()
    body = (await api.get("/api/health")).json()
    assert body["groups"]["engine"]["unheld"] == []
    assert body["services"]["engine"]["shares"] == sorted(survivor.held)
    assert sorted(survivor.held) == sorted(held["engine"] + held["engine-x"])
    assert body["services"]["engine-x"]["status"] == "stale"
    # every live member leaves cleanly: the group no longer runs shared, nothing is unheld
    for name in ("engine", "engine-2"):
        await groups[name].leave()
    body = (await api.get("/api/health")).json()
    assert body["groups"] == {}
    assert "engine-2" not in body["services"] and "engine-x" not in body["services"]
