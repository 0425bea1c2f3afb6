"""``/api/alerts``: recent events, and rules validated by the engine's own rule model,
written to config:alerts and announced on channel:config."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
import redis

from spreadbus.bus import keys
from spreadbus.bus.codec import Alert, alert_to_json
from spreadbus.engine.alerts import validate_rule


async def test_recent_alerts_newest_first_skipping_junk(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    assert (await api.get("/api/alerts")).json() == {"alerts": []}
    for i in range(3):
        alert = Alert("zscore-2", "ETHUSDT/BTCUSDT", "zscore", "abs>", 2.0 + i, 2.0, 1000 + i)
        sync_redis.lpush(keys.recent_alerts(), alert_to_json(alert))
    sync_redis.lpush(keys.recent_alerts(), b"not json")

    alerts = (await api.get("/api/alerts")).json()["alerts"]
    assert [a["time_ms"] for a in alerts] == [1002, 1001, 1000]
    assert alerts[0] == {
        "rule_id": "zscore-2", "pair": "ETHUSDT/BTCUSDT", "metric": "zscore", "op": "abs>",
        "value": 4.0, "threshold": 2.0, "time_ms": 1002, "message": "",
    }  # fmt: skip
    limited = (await api.get("/api/alerts?limit=2")).json()["alerts"]
    assert len(limited) == 1  # the first of two entries was junk
    assert (await api.get("/api/alerts?limit=0")).status_code == 422


async def test_put_get_delete_rule_announces_each_write(
    api: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(keys.CHANNEL_CONFIG)
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]

    async def announced() -> bytes:
        message = await asyncio.to_thread(
            pubsub.get_message, ignore_subscribe_messages=True, timeout=5
        )
        assert message is not None
        return bytes(message["data"])

    assert (await api.get("/api/alerts/rules")).json() == {"rules": [], "invalid": {}}
    rule = {"metric": "zscore", "op": "abs>", "threshold": 2.5, "pair": "ethusdt/btcusdt"}
    response = await api.put("/api/alerts/rules/z-2.5", json=rule)
    assert response.status_code == 200, response.text
    assert response.json()["pair"] == "ETHUSDT/BTCUSDT"
    assert response.json()["id"] == "z-2.5"
    assert await announced() == b"alerts"
    stored = sync_redis.hget(keys.CONFIG_ALERTS, "z-2.5")
    assert stored is not None
    assert validate_rule(stored, "z-2.5").threshold == 2.5

    sync_redis.hset(keys.CONFIG_ALERTS, "hand-made", b'{"metric": "nosuch"}')
    listing = (await api.get("/api/alerts/rules")).json()
    assert [r["id"] for r in listing["rules"]] == ["z-2.5"]
    assert set(listing["invalid"]) == {"hand-made"}

    deleted = await api.delete("/api/alerts/rules/z-2.5")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert await announced() == b"alerts"
    assert not sync_redis.hexists(keys.CONFIG_ALERTS, "z-2.5")
    assert (await api.delete("/api/alerts/rules/z-2.5")).status_code == 404
    assert (await api.delete("/api/alerts/rules/bad%20id")).status_code == 422
    pubsub.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"metric": "nosuch", "op": ">", "threshold": 1}, "unknown metric"),
        ({"metric": "zscore", "op": "!=", "threshold": 1}, "op"),
        ({"metric": "zscore", "op": ">"}, "threshold"),
        ({"metric": "zscore", "op": ">", "threshold": 1, "pair": "BTCUSDT"}, "pair metric"),
        ({"metric": "zscore", "op": ">", "threshold": 1, "id": "other"}, "does not match"),
        ({"metric": "zscore", "op": ">", "threshold": 1, "extra": 1}, "extra"),
        ({"metric": "zscore", "op": ">", "threshold": 1, "cooldown_s": -1}, "cooldown_s"),
        # JSON types as documented: lax pydantic read false as 0 and "2.5" as 2.5
        ({"metric": "zscore", "op": ">", "threshold": 1, "hysteresis": False}, "hysteresis"),
        ({"metric": "zscore", "op": ">", "threshold": "2.5"}, "threshold"),
        ({"metric": "zscore", "op": ">", "threshold": 1, "message": 7}, "message"),
    ],
)
async def test_invalid_rules_are_422_and_not_written(
    api: httpx.AsyncClient, sync_redis: redis.Redis, body: dict[str, object], reason: str
) -> None:
    response = await api.put("/api/alerts/rules/r1", json=body)
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert not sync_redis.exists(keys.CONFIG_ALERTS)


async def test_rule_body_must_be_an_object_and_id_valid(api: httpx.AsyncClient) -> None:
    assert (await api.put("/api/alerts/rules/r1", json=[1])).status_code == 422
    assert (await api.put("/api/alerts/rules/r1", content=b"{nope")).status_code == 422
    good = {"metric": "zscore", "op": ">", "threshold": 1}
    assert (await api.put("/api/alerts/rules/%20x", json=good)).status_code == 422
    too_long = "r" * 65
    assert (await api.put(f"/api/alerts/rules/{too_long}", json=good)).status_code == 422
    assert orjson.loads((await api.put("/api/alerts/rules/ok", json=good)).content)["id"] == "ok"
